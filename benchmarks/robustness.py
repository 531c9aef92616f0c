"""Does the answer depend on how a slice is presented? Dice@0.5 under fixed views of the COVID-SemiSeg slices.

    .venv/bin/python benchmarks/robustness.py [--models NAME|CKPT ...] [--split test|val] [--path product|network]
    .venv/bin/python benchmarks/robustness.py --multiclass [--models NAME ...] [--infection-model NAME]   # GGO/cons.
    .venv/bin/python benchmarks/robustness.py --tta dihedral   # the 8-view average (`infnet segment` on 2D slices)

Views (``infnet.data.presentation.VIEWS``): native (the dataset's layout and window), the 7 other flips/rotations
of the plane (``display (transpose)`` is how a PACS shows a COVID-SemiSeg slice), three other lung windows
(level/width -600/1500, -700/1000, -500/1600 HU; the 8-bit slice is mapped back to HU through the training
window, then re-windowed), and the slice pasted into a synthetic 512 x 512 full field of view (body ellipse,
fat rim, air, table, circular reconstruction field; seeded per slice), natively and transposed.

``--path product`` (default) runs each view through ``infnet segment``'s 2D path (lung mask, lung-box crop of
full-FOV slices, orientation 'training': nothing is turned for the model but a slice whose two lungs it finds one
above the other, which it turns a quarter, as for any stated orientation);
``--path network`` gives the view to the model as is. Dice@0.5 is the standard protocol's mean per-slice Dice
(``infnet evaluate --protocol standard``), computed in the view's own frame; with ``--multiclass`` the
multi-class models' ground-glass / consolidation Dice@0.5 against MultiClassInfection-Test GT (the val split's
multi-class GT with ``--split val``), each with its registered infection model. Decisions are made on ``--split
val`` (the 5 validation slices) or ``--split pseudo`` (100 of the unlabelled slices, the authors' pseudo-labels as
reference: enough slices to see what the 2D pipeline costs against the network alone); the test slices are for the
report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from infnet.data import semiseg
from infnet.data.presentation import VIEWS
from infnet.evaluate import evaluate_arrays
from infnet.inference import load_predictor
from infnet.io.images import list_images, read_gray, read_label
from infnet.models import weights
from infnet.scan.pipeline import segment_slices
from infnet.scan.volume_io import SliceSet


def pairs(root: Path, split: str, multiclass: bool = False) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stem, 8-bit slice, GT) of the val (5) or test (48) slices; GT 0/255, or class indices 0/1/2."""
    name = {(False, "val"): "doctor-label", (False, "test"): "lung-test", (True, "val"): "multiclass-train",
            (True, "test"): "multiclass-test", (False, "pseudo"): "pseudo-label"}[(multiclass, split)]  # fmt: skip
    sp = semiseg.SPLITS[name]
    images = list_images(root / sp.image_dir)
    if split == "pseudo":  # every 16th unlabelled slice (100), the authors' pseudo-label as reference
        images = images[:: semiseg.PSEUDO_HOLDOUT_STEP]
    if split == "val":
        stems = set(semiseg.read_split_list(root, "val"))
        images = [p for p in images if p.stem in stems]
    masks = {p.stem: p for p in list_images(root / sp.mask_dir)}
    read = read_label if multiclass else read_gray
    return [(p.stem, read_gray(p), read(masks[p.stem])) for p in images]


def view_dice(seg, data, view, path: str, classes: tuple[int, ...] = (0,)) -> list[float]:
    """Dice@0.5 of the binary mask (classes (0,)) or of each class index in ``classes`` under ``view``."""
    shown = [(stem, *view.apply(img, [gt], seed=i)) for i, (stem, img, gt) in enumerate(data)]
    if path == "product":
        slices = SliceSet(Path("<view>"), [im for _, im, _ in shown], [s for s, _, _ in shown])
        masks = segment_slices(seg, slices, slice_orientation="training", lung_mask="intensity").mask
    else:
        masks = [seg.predict(im) for _, im, _ in shown]
    out = []
    for c in classes:

        def pick(a, c=c):
            return a > 0 if c == 0 else a == c

        items = [(s, pick(m).astype(np.uint8) * 255, pick(gt) if c else gt > 127)
                 for (s, _, gt), m in zip(shown, masks, strict=True)]  # fmt: skip
        out.append(float(evaluate_arrays(items, protocol="standard").standard["dice"]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", help="bundled names or checkpoints (default: the bundled binary ones)")
    ap.add_argument("--multiclass", action="store_true", help="multi-class models: GGO and consolidation Dice")
    ap.add_argument("--split", choices=("test", "val", "pseudo"), default="test",
                    help="pseudo: 100 unlabelled slices against the authors' pseudo-labels (pipeline checks; "
                    "the Semi-Inf-Net models trained on them)")  # fmt: skip
    ap.add_argument("--path", choices=("product", "network"), default="product")
    ap.add_argument("--views", nargs="+", help="view names (default: all)")
    ap.add_argument("--infection-model", help="with --multiclass: the infection prior's model (default: each "
                    "multi-class model's registered one)")  # fmt: skip
    ap.add_argument("--tta", choices=("none", "mirror", "dihedral", "auto"), default="none",
                    help="test-time augmentation (auto: as `infnet segment` does: dihedral on 2D)")  # fmt: skip
    args = ap.parse_args(argv)
    task = "multiclass" if args.multiclass else "binary"
    bundled = weights.list_bundled()
    models = args.models or [n for n in bundled if weights.bundled_entry(n).get("task", "binary") == task]
    classes = (1, 2) if args.multiclass else (0,)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    data = pairs(semiseg.find_dataset(), args.split, args.multiclass)
    views = [v for v in VIEWS if not args.views or v.name in args.views or v.name == "native"]
    print(f"Dice@0.5 on the {len(data)} {args.split} slices, {args.path} path, TTA {args.tta} "
          "(difference to native in brackets)\n")  # fmt: skip
    names = [Path(m).parent.name if m.endswith(".safetensors") else m for m in models]
    cols = [f"{n} {c}" for n in names for c in (("GGO", "cons.") if args.multiclass else ("",))]
    print("| view | " + " | ".join(c.strip() for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    table = []  # per column: Dice per view
    for name in models:
        prior = args.infection_model if args.multiclass else None
        seg = load_predictor(name, infection_model=prior, device="cpu", tta=args.tta)
        per_view = [view_dice(seg, data, v, args.path, classes) for v in views]
        table += [[d[i] for d in per_view] for i in range(len(classes))]
    for j, v in enumerate(views):
        cells = [f"{col[j]:.3f}" + ("" if j == 0 else f" ({col[j] - col[0]:+.3f})") for col in table]
        print(f"| {v.name} | " + " | ".join(cells) + " |", flush=True)
    if len(views) > 1:
        print("| worst difference | " + " | ".join(f"{min(col[1:]) - col[0]:+.3f}" for col in table) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
