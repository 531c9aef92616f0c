"""Test-time augmentation and output temperature on the bundled binary models: val and test scores.

    .venv/bin/python benchmarks/tta.py [--models infnet-effl2-semiseg infnet-effl2-semi-semiseg] [--scales 0.75 1 1.25]

For each model prints paper meanDic / Sm and standard Dice@0.5 on the 5 val slices and the 48 LungInfection-Test
slices: plain, with ``tta=True`` (mean logits of the slice and its mirror image) and with ``tta=True`` plus
``tta_scales`` (also averaged over input scales), at T = 1 and at the model's stored temperature.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from infnet.calibration import sharpen
from infnet.data import semiseg
from infnet.evaluate import evaluate_arrays
from infnet.inference import Segmenter
from infnet.io.images import list_images, read_gray
from infnet.models import weights


def _pairs(root, split: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    sp = semiseg.SPLITS["doctor-label" if split == "val" else "lung-test"]
    images = list_images(root / sp.image_dir)
    if split == "val":
        stems = set(semiseg.read_split_list(root, "val"))
        images = [p for p in images if p.stem in stems]
    masks = {p.stem: p for p in list_images(root / sp.mask_dir)}
    return [(p.stem, read_gray(p), read_gray(masks[p.stem]) > 128) for p in images]


def main(argv=None) -> int:
    binary = [n for n in weights.list_bundled() if weights.bundled_entry(n).get("task", "binary") == "binary"]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=binary)
    ap.add_argument("--scales", nargs="+", type=float, default=[0.75, 1.0, 1.25], help="scales of the third setting")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    root = semiseg.find_dataset()
    data = {s: _pairs(root, s) for s in ("val", "test")}
    scales = "+".join(f"{s:g}" for s in args.scales)
    print(f"{'model':<28} {'split':<5} {'tta':<16} {'T':>3} {'meanDic':>8} {'Sm':>6} {'Dice@0.5':>9}")
    for name in args.models:
        for tta, tta_scales in ((False, None), (True, None), (True, args.scales)):
            seg = Segmenter.from_pretrained(name, device="cpu", tta=tta, tta_scales=tta_scales, temperature=1.0)
            tag = ("mirror" if tta else "no") + (f"+{scales}" if tta_scales else "")
            stored = weights.bundled_entry(name).get("temperature", 1.0) if name in binary else 1.0
            for split, pairs in data.items():
                probs = [seg.predict_proba(im[None])[0, 0] for _, im, _ in pairs]
                for t in sorted({1.0, stored}):
                    r = evaluate_arrays([(s, sharpen(p, t), g) for (s, _, g), p in zip(pairs, probs, strict=True)])
                    scores = (r.paper["meanDic"], r.paper["Sm"], r.standard["dice"])
                    _print_row(name, split, tag, t, scores)
    return 0


def _print_row(name: str, split: str, tag: str, t: float, scores: tuple[float, float, float]) -> None:
    mean_dic, sm, dice = scores
    print(f"{name:<28} {split:<5} {tag:<16} {t:>3g} {mean_dic:>8.3f} {sm:>6.3f} {dice:>9.3f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
