"""Fit a density split (:mod:`infnet.models.density`): GGO vs consolidation by local attenuation.

The split is a logistic regression fitted by maximum likelihood on the infected pixels of the training slices
(ground-truth labels; up to ``samples_per_image`` pixels drawn per slice, so every slice counts about equally).
The opening that cleans the consolidation mask is then chosen among ``openings`` by the mean per-image Dice of
GGO and consolidation on the same slices, with the ground-truth infection mask as the prior (the training
condition of the paper's FCN8s too). The run directory looks like a trained run's::

    run/config.json        DensityFitConfig (task = multiclass, model = density-split)
    run/best.safetensors   the fitted model (infnet checkpoint; input_size 0 = the slice's own size)
    run/metrics.csv        one row: the fit's training loss, val Dice (mean of GGO and consolidation), seconds
    run/fit.json           weights, the Dice of every opening tried, pixel counts
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infnet.errors import InfnetError
from infnet.io.images import atomic_write_text
from infnet.models.density import DENSITY, DensitySplit, DensitySplitConfig
from infnet.models.registry import save_checkpoint
from infnet.multiclass.config import MultiClassConfig
from infnet.multiclass.data import CLASSES, MultiClassDataset, class_dice, resize_label, to_input
from infnet.training.rundir import append_csv


@dataclass
class DensityFitConfig:
    """Settings of a density-split fit; saved as config.json next to the checkpoint."""

    model: str = DENSITY
    data: str | None = None  # COVID-SemiSeg root (MultiClassInfection-Train + split lists)
    train_split: str = "train"
    val_split: str | None = "val"
    train_images: str | None = None
    train_labels: str | None = None
    val_images: str | None = None
    val_labels: str | None = None
    sigmas: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    openings: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    samples_per_image: int = 4000
    size: int = 0  # 0: fit and predict at each slice's own size; else resize to size x size as the networks do
    seed: int = 0
    task: str = "multiclass"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def check(self) -> None:
        if any(not s > 0 for s in self.sigmas):
            raise InfnetError(f"blur sigmas must be positive pixel sizes, got {self.sigmas}")
        if not self.openings or any(r < 0 for r in self.openings):
            raise InfnetError(f"openings must be numbers of 3x3 steps >= 0, got {self.openings}")
        if self.samples_per_image < 1:
            raise InfnetError(f"samples per image must be >= 1, got {self.samples_per_image}")
        if self.size < 0:
            raise InfnetError(f"size must be 0 (each slice's own) or a positive pixel size, got {self.size}")


def _load(image_dir, label_dir, stems) -> list[tuple[np.ndarray, np.ndarray]]:
    """(slice, class label) pairs, read and checked as for training (:class:`MultiClassDataset`)."""
    ds = MultiClassDataset(image_dir, label_dir, stems=stems)
    return list(zip(ds.images, ds.labels, strict=True))


def _inputs(model: DensitySplit, pairs, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input (1,4,H,W) with the GT infection prior, label (1,H,W)) per slice, at ``size`` (0: own size)."""
    out = []
    for img, label in pairs:
        prior = np.where(label > 0, 255, 0).astype(np.uint8)
        x = to_input(img, prior, size or None, model.mean, model.std)[None]
        y = resize_label(label, size)[None] if size else torch.from_numpy(label.astype(np.int64))[None]
        out.append((x, y))
    return out


def fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Maximum-likelihood logistic regression (small L2 so it stays defined): x (P,F), y (P,) in {0,1}.

    Returns (weight (F,), bias (1,), mean training loss)."""
    x, y = x.double(), y.double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        loss = float(F.binary_cross_entropy_with_logits(x @ w + b, y))
    return w.detach().float(), b.detach().float(), loss


def uniform_boundary(w: torch.Tensor, b: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor) -> dict:
    """The grey level (0-255) above which a uniform region is consolidation (all features equal it there), and
    that level in HU under the training slices' display window (:mod:`infnet.scan.preprocess`)."""
    from infnet.scan.preprocess import uint8_to_hu

    slope = float((w / sd).sum())
    grey = 255.0 * (float((w * mu / sd).sum()) - float(b)) / slope if slope else float("nan")
    return {"boundary_grey": grey, "boundary_hu": float(uint8_to_hu(np.array([grey]))[0])}


@torch.inference_mode()
def split_dice(model: DensitySplit, data: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """Mean per-image Dice of GGO and of consolidation (empty GT and prediction count as 1)."""
    scores = torch.cat([class_dice(model(x)["out"].argmax(dim=1), y) for x, y in data])
    return float(scores[:, 0].mean()), float(scores[:, 1].mean())


def score_pairs(model: DensitySplit, pairs: list[tuple[np.ndarray, np.ndarray]], size: int = 0) -> tuple[float, float]:
    """:func:`split_dice` of (slice, class label) pairs, each given its ground-truth infection mask as the prior."""
    return split_dice(model, _inputs(model, pairs, size))


def _data_dirs(cfg: DensityFitConfig) -> dict:
    from infnet.multiclass.trainer import resolve_data

    mc = MultiClassConfig(data=cfg.data, train_split=cfg.train_split, val_split=cfg.val_split,
                          train_images=cfg.train_images, train_labels=cfg.train_labels,
                          val_images=cfg.val_images, val_labels=cfg.val_labels)  # fmt: skip
    dirs = resolve_data(mc)
    return {k: (v["image_dir"], v["label_dir"], v.get("stems")) for k, v in dirs.items()}


def fit_on_pairs(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    sigmas: list[float],
    openings: list[int],
    samples_per_image: int = 4000,
    size: int = 0,
    seed: int = 0,
    progress: bool = False,
) -> tuple[DensitySplit, dict]:
    """Fit a density split on (uint8 slice (H,W), class label (H,W) in {0,1,2}) pairs; returns (model, fit facts).

    Maximum likelihood on up to ``samples_per_image`` infected pixels per slice, then the opening with the best
    mean training Dice of GGO and consolidation (ground-truth prior). Raises if the labels lack a class."""
    model = DensitySplit(DensitySplitConfig(sigmas=[float(s) for s in sigmas], opening=0))
    model.arch_name = DENSITY
    train = _inputs(model, pairs, size)
    rng = np.random.default_rng(seed)
    feats, targets = [], []
    with torch.inference_mode():
        for x, y in train:
            idx = np.flatnonzero((y[0] > 0).flatten().numpy())
            if len(idx) == 0:
                continue
            idx = rng.choice(idx, size=min(len(idx), samples_per_image), replace=False)
            f = model.features(model.grey(x))[0].flatten(1).T  # (H*W, F)
            feats.append(f[idx])
            targets.append((y[0].flatten()[idx] == 2).float())
    if not feats:
        raise InfnetError("no infected pixels in the training labels; nothing to fit")
    fx, fy = torch.cat(feats), torch.cat(targets)
    if fy.min() == fy.max():
        which = "consolidation" if fy.max() == 0 else "ground-glass opacity"
        raise InfnetError(f"the training labels hold no {which}; the split needs both classes")
    mu, sd = fx.mean(dim=0), fx.std(dim=0).clamp(min=1e-6)
    w, b, loss = fit_logistic((fx - mu) / sd, fy)
    with torch.no_grad():
        model.weight.copy_(w)
        model.bias.copy_(b)
        model.feature_mean.copy_(mu)
        model.feature_std.copy_(sd)
    tried = {}
    for r in sorted(set(int(r) for r in openings)):
        model.config.opening = r
        ggo, cons = split_dice(model, train)
        tried[r] = {"ggo": ggo, "consolidation": cons, "mean": (ggo + cons) / 2}
        if progress:
            print(f"opening {r}: training Dice GGO {ggo:.3f}, consolidation {cons:.3f}")
    # Ties go to the smaller opening (less change to the fitted split).
    model.config.opening = max(tried, key=lambda r: (tried[r]["mean"], -r))
    fit = {
        "features": ["grey"] + [f"blur sigma {s:g}" for s in sigmas],
        "weight": w.tolist(),
        "bias": float(b),
        "feature_mean": mu.tolist(),
        "feature_std": sd.tolist(),
        "pixels": int(len(fy)),
        "consolidation_share": float(fy.mean()),
        "train_loss": loss,
        "openings": {str(r): v for r, v in tried.items()},
        "opening": model.config.opening,
        **uniform_boundary(w, b, mu, sd),
    }
    return model, fit


def fit_density_split(cfg: DensityFitConfig, run_dir: str | Path, progress: bool = True) -> Path:
    """Fit per ``cfg`` into ``run_dir`` (which must not hold a run yet); returns the checkpoint path."""
    cfg.check()
    run_dir = Path(run_dir)
    if (run_dir / "best.safetensors").exists() or (run_dir / "state.pt").exists():
        raise InfnetError(f"{run_dir}: run directory already holds a run; choose another --out")
    t0 = time.time()
    dirs = _data_dirs(cfg)
    try:
        model, fit = fit_on_pairs(_load(*dirs["train"]), cfg.sigmas, cfg.openings, cfg.samples_per_image,
                                  cfg.size, cfg.seed, progress)  # fmt: skip
    except InfnetError as exc:
        raise InfnetError(f"{dirs['train'][1]}: {exc}") from None
    val = None
    if "val" in dirs:
        val = score_pairs(model, _load(*dirs["val"]), cfg.size)
    fit["val"] = None if val is None else {"ggo": val[0], "consolidation": val[1]}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", cfg.to_json())
    extra = {"input_size": cfg.size, "task": "multiclass", "classes": list(CLASSES), "seed": cfg.seed}
    save_checkpoint(model, run_dir / "best.safetensors", extra=extra)
    seconds = time.time() - t0
    val_dice = "" if val is None else f"{sum(val) / 2:.5f}"
    append_csv(run_dir / "metrics.csv", dict(epoch=1, lr="", train_loss=f"{fit['train_loss']:.5f}",
                                             val_dice=val_dice, seconds=f"{seconds:.1f}"))  # fmt: skip
    atomic_write_text(run_dir / "fit.json", json.dumps(fit, indent=2))
    if progress:
        print(
            f"opening {fit['opening']} chosen; a uniform region is consolidation above grey "
            f"{fit['boundary_grey']:.0f} (about {fit['boundary_hu']:.0f} HU in the training slices' window)"
        )
    return run_dir / "best.safetensors"
