"""The published pseudo-labels less the 100 slices `benchmarks/robustness.py --split pseudo` scores on.

    python scripts/pseudo_subset.py --out runs/pseudo-1500

Writes ``OUT/Imgs`` and ``OUT/GT`` as symbolic links to COVID-SemiSeg's unlabelled slices and the authors'
pseudo-labels, every 16th slice (in file-name order, the benchmark's rule) left out, so that a model pre-trained
on them (`infnet train --train-images OUT/Imgs --train-masks OUT/GT ...`) can still be scored on the 100 it did
not see. Nothing is copied; an existing ``OUT`` is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infnet.data import semiseg
from infnet.io.images import list_images


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", type=Path, help="COVID-SemiSeg root (default: found automatically)")
    args = ap.parse_args(argv)
    if args.out.exists():
        print(f"{args.out}: already exists; choose a new folder", file=sys.stderr)
        return 2
    root = (args.data or semiseg.find_dataset()).resolve()
    split = semiseg.SPLITS["pseudo-label"]
    images = list_images(root / split.image_dir)
    held = {p.stem for p in images[:: semiseg.PSEUDO_HOLDOUT_STEP]}
    masks = {p.stem: p for p in list_images(root / split.mask_dir)}
    (args.out / "Imgs").mkdir(parents=True)
    (args.out / "GT").mkdir()
    kept = [p for p in images if p.stem not in held]
    for p in kept:
        (args.out / "Imgs" / p.name).symlink_to(p)
        (args.out / "GT" / masks[p.stem].name).symlink_to(masks[p.stem])
    print(f"{len(kept)} slices linked into {args.out} ({len(held)} held out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
