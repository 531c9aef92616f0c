"""Does the answer depend on how a slice is presented? Dice@0.5 under fixed views of the COVID-SemiSeg slices.

    .venv/bin/python benchmarks/robustness.py [--models NAME|CKPT ...] [--split test|val] [--path product|network]

Views (``infnet.data.presentation.VIEWS``): native (the dataset's layout and window), the 7 other flips/rotations
of the plane (``display (transpose)`` is how a PACS shows a COVID-SemiSeg slice), three other lung windows
(level/width -600/1500, -700/1000, -500/1600 HU; the 8-bit slice is mapped back to HU through the training
window, then re-windowed), and the slice pasted into a synthetic 512 x 512 full field of view (body ellipse,
fat rim, air, table, circular reconstruction field; seeded per slice), natively and transposed.

``--path product`` (default) runs each view through ``infnet segment``'s 2D path (lung mask, lung-box crop of
full-FOV slices, orientation 'training' so that nothing is turned for the model: the model alone must cope);
``--path network`` gives the view to the model as is. Dice@0.5 is the standard protocol's mean per-slice Dice
(``infnet evaluate --protocol standard``), computed in the view's own frame. Decisions are made on ``--split
val`` (the 5 validation slices); the test slices are for the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from infnet.data import semiseg
from infnet.data.presentation import VIEWS
from infnet.evaluate import evaluate_arrays
from infnet.inference import Segmenter
from infnet.io.images import list_images, read_gray
from infnet.models import weights
from infnet.scan.pipeline import segment_slices
from infnet.scan.volume_io import SliceSet


def pairs(root: Path, split: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stem, 8-bit slice, GT 0/255) of the val (5) or test (48) slices."""
    sp = semiseg.SPLITS["doctor-label" if split == "val" else "lung-test"]
    images = list_images(root / sp.image_dir)
    if split == "val":
        stems = set(semiseg.read_split_list(root, "val"))
        images = [p for p in images if p.stem in stems]
    masks = {p.stem: p for p in list_images(root / sp.mask_dir)}
    return [(p.stem, read_gray(p), read_gray(masks[p.stem])) for p in images]


def view_dice(seg: Segmenter, data, view, path: str) -> float:
    shown = [(stem, *view.apply(img, [gt], seed=i)) for i, (stem, img, gt) in enumerate(data)]
    if path == "product":
        slices = SliceSet(Path("<view>"), [im for _, im, _ in shown], [s for s, _, _ in shown])
        masks = segment_slices(seg, slices, slice_orientation="training", lung_mask="intensity").mask
    else:
        masks = [seg.predict(im) for _, im, _ in shown]
    r = evaluate_arrays([(s, m.astype(np.uint8) * 255, gt > 127) for (s, _, gt), m in zip(shown, masks, strict=True)],
                        protocol="standard")  # fmt: skip
    return float(r.standard["dice"])


def main(argv=None) -> int:
    binary = [n for n in weights.list_bundled() if weights.bundled_entry(n).get("task", "binary") == "binary"]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=binary, help="bundled names or checkpoints")
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--path", choices=("product", "network"), default="product")
    ap.add_argument("--views", nargs="+", help="view names (default: all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    data = pairs(semiseg.find_dataset(), args.split)
    views = [v for v in VIEWS if not args.views or v.name in args.views or v.name == "native"]
    print(f"Dice@0.5 on the {len(data)} {args.split} slices, {args.path} path (difference to native in brackets)\n")
    names = [Path(m).parent.name if m.endswith(".safetensors") else m for m in args.models]
    print("| view | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    table = {}
    for name in args.models:
        seg = Segmenter.from_pretrained(name, device="cpu")
        table[name] = [view_dice(seg, data, v, args.path) for v in views]
    for j, v in enumerate(views):
        cells = []
        for name in args.models:
            d, native = table[name][j], table[name][0]
            cells.append(f"{d:.3f}" + ("" if j == 0 else f" ({d - native:+.3f})"))
        print(f"| {v.name} | " + " | ".join(cells) + " |", flush=True)
    worst = {n: min(table[n][1:]) - table[n][0] for n in args.models}
    print("| worst difference | " + " | ".join(f"{worst[n]:+.3f}" for n in args.models) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
