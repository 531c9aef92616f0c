"""Cross-validated density-split settings on the 50 labelled multi-class training slices (no test slice used).

    .venv/bin/python benchmarks/density_cv.py [--folds 5]

For each feature set (the grey level alone, or with Gaussian blurs at the listed sigmas) the split is fitted
(``infnet.multiclass.density.fit_on_pairs``: maximum likelihood, then the opening by training Dice) on the other
folds and scored on the held-out fold with the ground-truth infection mask as the prior, so it measures the split
alone. Prints the mean per-image Dice of GGO and consolidation over all 50 held-out slices and the openings the
folds chose. Folds: the slices sorted by name, every k-th to a fold.
"""

from __future__ import annotations

import argparse

import numpy as np

from infnet.data import semiseg
from infnet.multiclass.data import MultiClassDataset
from infnet.multiclass.density import fit_on_pairs, score_pairs

FEATURE_SETS = ([], [1.0], [2.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0, 8.0], [1.0, 2.0, 4.0, 8.0, 16.0])
OPENINGS = [0, 1, 2, 3]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args(argv)
    root = semiseg.find_dataset()
    split = semiseg.SPLITS["multiclass-train"]
    stems = sorted(semiseg.read_split_list(root, "trainval"))
    ds = MultiClassDataset(root / split.image_dir, root / split.mask_dir, stems=stems)
    pairs = list(zip(ds.images, ds.labels, strict=True))
    folds = [list(range(i, len(pairs), args.folds)) for i in range(args.folds)]
    print(f"{len(pairs)} MultiClassInfection-Train slices, {args.folds}-fold cross-validation, GT infection prior")
    print(f"  {'blur sigmas':<22} {'GGO Dice':>9} {'cons Dice':>10} {'mean':>7}  openings chosen")
    for sigmas in FEATURE_SETS:
        ggo, cons, chosen = [], [], []
        for held in folds:
            train = [p for i, p in enumerate(pairs) if i not in held]
            model, fit = fit_on_pairs(train, sigmas, OPENINGS)
            for i in held:
                g, c = score_pairs(model, [pairs[i]])
                ggo.append(g)
                cons.append(c)
            chosen.append(fit["opening"])
        name = " ".join(f"{s:g}" for s in sigmas) or "(grey level only)"
        g, c = float(np.mean(ggo)), float(np.mean(cons))
        print(f"  {name:<22} {g:>9.3f} {c:>10.3f} {(g + c) / 2:>7.3f}  {chosen}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
