"""Time `evaluate_folders` on the four lung-infection reference models (48 images each), both protocols.

The budget is 60 s on a 2-core machine (the paper protocol needs 256 thresholds per image; they are computed
from sorted pixel values, not by re-thresholding the image 256 times). Run::

    .venv/bin/python benchmarks/bench_evaluate.py [--root PATH] [--limit 60]

Exits 1 when the total wall time exceeds ``--limit``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from infnet.data.semiseg import LUNG_TEST, REFERENCE, find_dataset
from infnet.evaluate import evaluate_folders

MODELS = ("Inf-Net", "Semi-Inf-Net", "UNet", "UNet++")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="COVID-SemiSeg root (default: found like the tests do)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds allowed in total (default 60)")
    args = parser.parse_args(argv)
    root = args.root or find_dataset()
    gt = root / LUNG_TEST / "GT"
    total = 0.0
    for model in MODELS:
        start = time.perf_counter()
        result = evaluate_folders(root / REFERENCE / "Results/Lung infection segmentation" / model, gt, "both")
        elapsed = time.perf_counter() - start
        total += elapsed
        paper, standard = result.paper, result.standard
        print(
            f"{model:13s} {result.n_images} images  {elapsed:6.2f} s  "
            f"meanDic {paper['meanDic']:.3f}  Sm {paper['Sm']:.3f}  meanEm {paper['meanEm']:.3f}  "
            f"dice@0.5 {standard['dice']:.3f}  hd95 {standard['hd95']:.1f}"
        )
    print(f"total wall time: {total:.2f} s (limit {args.limit:.0f} s)")
    return 0 if total <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
