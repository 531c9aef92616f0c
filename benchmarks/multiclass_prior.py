"""How much of the multi-class error is the infection map's? Scores a multi-class model with different priors.

    .venv/bin/python benchmarks/multiclass_prior.py [--model fcn8s-effl2-multiclass-semiseg]
        [--infection-model infnet-effl2-semiseg]

On the 48 MultiClassInfection-Test slices (paper-protocol meanDic and Dice@0.5, GGO vs GT-1 and consolidation
vs GT-2), prints:

- ``model prior``: the multi-class model as shipped (prior = the infection model's binarised map);
- ``GT prior``: the same model given the ground-truth infection mask as its prior (the training condition);
- ``model prior, gated``: the model's class split (GGO / (GGO + consolidation)) times the infection probability;
- ``GT prior, gated``: the class split with the GT prior, applied inside the ground-truth mask only;
- ``all infection = class``: the infection model's probability (or the GT mask) scored as if every infected
  pixel were GGO, or consolidation: what a perfect or a trivial class split could reach with that map;
- ``GT prior eroded/dilated 3 px``: how sensitive the per-image Dice is to the prior's boundary;
- ``authors' map prior``: the authors' published Semi-Inf-Net predictions (reference-outputs) as the prior,
  binarised at 128: a better infection map (their Dice@0.5 0.770 against our 0.753) from another model;
- ``authors' map = class``: those predictions scored as if every infected pixel were GGO (or consolidation),
  to set against the authors' own FCN8s (reference rows of benchmarks/reproduce.md);
- ``model prior, cons. logit -k``: the shipped pair with the consolidation logit lowered by k (a GGO-favouring
  split): how far moving pixels from consolidation to GGO can take GGO, and what consolidation pays (not for a
  density split, whose outputs are 0/1).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from infnet.data import semiseg
from infnet.evaluate import evaluate_folders
from infnet.inference import Segmenter, load_predictor
from infnet.io.images import list_images, read_gray, write_png

BIASES = (1.0, 2.0, 3.0)
GT = {"ggo": "multiclass-test-ggo", "consolidation": "multiclass-test-consolidation"}


def _write(folder: Path, stem: str, prob: np.ndarray) -> None:
    write_png(folder / f"{stem}.png", np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8))


def _with_prior(seg, image: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The multi-class model's (2,H,W) probabilities for ``image`` with a given boolean prior in place of its own."""
    mask = np.where(prior, 255, 0).astype(np.uint8)
    seg.priors = lambda slices: [mask]
    try:
        return seg.predict_proba([image])[0]
    finally:
        del seg.priors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fcn8s-effl2-multiclass-semiseg")
    ap.add_argument("--infection-model", default="infnet-effl2-semiseg")
    args = ap.parse_args(argv)
    root = semiseg.find_dataset()
    images = list_images(root / semiseg.SPLITS["multiclass-test"].image_dir)
    gt_dirs = {c: root / semiseg.SPLITS[s].mask_dir for c, s in GT.items()}
    seg = load_predictor(args.model, infection_model=args.infection_model, device="cpu")
    infection = Segmenter.from_pretrained(args.infection_model, device="cpu")
    variants = (
        "model prior",
        "model prior, gated",
        "GT prior",
        "GT prior, gated",
        "model map = class",
        "GT mask = class",
        "GT prior eroded 3 px",
        "GT prior dilated 3 px",
        "authors' map prior",
        "authors' map = class",
    )
    # A density split's outputs are 0/1 inside the prior: lowering a logit moves nothing, so it gets no bias rows.
    biases = () if getattr(seg.model, "arch_name", "") == "density-split" else BIASES
    variants += tuple(f"model prior, cons. logit -{k:g}" for k in biases)
    authors = root / semiseg.REFERENCE / "Results/Lung infection segmentation/Semi-Inf-Net"
    with tempfile.TemporaryDirectory() as tmp:
        out = {v: Path(tmp) / str(i) for i, v in enumerate(variants)}
        for path in images:
            image, stem = read_gray(path), path.stem
            gt = {c: read_gray(gt_dirs[c] / f"{stem}.png") > 0 for c in GT}
            gt_inf = gt["ggo"] | gt["consolidation"]
            p_model = seg.predict_proba([image])[0]
            p_gt = _with_prior(seg, image, gt_inf)  # the same network, handed the ground-truth prior
            p_ero = _with_prior(seg, image, ndimage.binary_erosion(gt_inf, iterations=3))
            p_dil = _with_prior(seg, image, ndimage.binary_dilation(gt_inf, iterations=3))
            auth = read_gray(authors / f"{stem}.png") >= 128
            p_auth = _with_prior(seg, image, auth)
            split = p_gt[0] / np.maximum(p_gt[0] + p_gt[1], 1e-6)
            p_inf = infection.predict_proba([image])[0][0]
            split_m = p_model[0] / np.maximum(p_model[0] + p_model[1], 1e-6)
            for c, k in (("ggo", 0), ("consolidation", 1)):
                _write(out["model prior"] / c, stem, p_model[k])
                _write(out["model prior, gated"] / c, stem, p_inf * (split_m if k == 0 else 1 - split_m))
                _write(out["GT prior"] / c, stem, p_gt[k])
                _write(out["GT prior, gated"] / c, stem, gt_inf * (split if k == 0 else 1 - split))
                _write(out["model map = class"] / c, stem, p_inf)
                _write(out["GT mask = class"] / c, stem, gt_inf.astype(np.float32))
                _write(out["GT prior eroded 3 px"] / c, stem, p_ero[k])
                _write(out["GT prior dilated 3 px"] / c, stem, p_dil[k])
                _write(out["authors' map prior"] / c, stem, p_auth[k])
                _write(out["authors' map = class"] / c, stem, auth.astype(np.float32))
                for b in biases:  # softmax with the consolidation logit lowered by b
                    w = np.array([1.0, np.exp(-b)], np.float32)[:, None, None]
                    p = p_model * w / (1.0 - p_model.sum(axis=0) + (p_model * w).sum(axis=0))
                    _write(out[f"model prior, cons. logit -{b:g}"] / c, stem, p[k])
        print(f"{args.model} (prior: {args.infection_model}), {len(images)} MultiClassInfection-Test slices")
        print(f"  {'variant':<29} {'GGO meanDic':>12} {'GGO Dice@0.5':>13} {'cons meanDic':>13} {'cons Dice@0.5':>14}")
        for v in variants:
            cells = []
            for c in GT:
                r = evaluate_folders(out[v] / c, gt_dirs[c], "both")
                cells += [r.paper["meanDic"], r.standard["dice"]]
            print(f"  {v:<29} {cells[0]:>12.3f} {cells[1]:>13.3f} {cells[2]:>13.3f} {cells[3]:>14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
