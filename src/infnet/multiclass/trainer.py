"""Multi-class training (paper section III-E): image + infection prior -> background / GGO / consolidation.

Cross-entropy, Adam, one learning-rate step. The run directory mirrors the binary trainer's::

    run/config.json        MultiClassConfig (task = multiclass)
    run/metrics.csv        epoch, lr, train_loss, val_dice (mean of GGO and consolidation Dice), seconds
    run/last.safetensors   weights after the last finished epoch (infnet checkpoint, input_size in metadata)
    run/best.safetensors   best validation Dice (the last epoch without validation)
    run/state.pt           optimizer + RNG + epoch for ``resume`` (tensor-only)
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from infnet.data import semiseg
from infnet.data.dataset import iter_batches
from infnet.data.presentation import VALIDATION_VIEWS, PresentationAugment
from infnet.errors import InfnetError
from infnet.io.images import atomic_write_text
from infnet.models.density import DENSITY, FIT_DENSITY
from infnet.models.registry import create_model
from infnet.multiclass.config import MultiClassConfig
from infnet.multiclass.data import CLASSES, IN_CHANS, NUM_CLASSES, MultiClassDataset, class_dice
from infnet.training.rundir import append_csv, open_run, progress_bar, restore, save_epoch, save_state
from infnet.training.trainer import init_from_checkpoint, pick_device

PRIOR_DIR = f"{semiseg.MULTI_TRAIN}/Prior"
__all__ = ["MultiClassConfig", "train_multiclass", "resolve_data", "build_model", "validate"]


def resolve_data(cfg: MultiClassConfig) -> dict:
    """Dataset keyword arguments for train (and val) from explicit folders or the COVID-SemiSeg root."""
    out: dict = {}
    if cfg.train_images:
        if not cfg.train_labels:
            raise InfnetError(f"{cfg.train_images}: training images given without --train-labels")
        out["train"] = dict(image_dir=cfg.train_images, label_dir=cfg.train_labels, prior_dir=cfg.train_priors)
        if cfg.val_images:
            if not cfg.val_labels:
                raise InfnetError(f"{cfg.val_images}: validation images given without --val-labels")
            out["val"] = dict(image_dir=cfg.val_images, label_dir=cfg.val_labels, prior_dir=cfg.val_priors)
        return out
    root = Path(cfg.data) if cfg.data else semiseg.find_dataset()
    split = semiseg.SPLITS["multiclass-train"]
    prior = root / PRIOR_DIR if (root / PRIOR_DIR).is_dir() else None
    base = dict(image_dir=root / split.image_dir, label_dir=root / split.mask_dir, prior_dir=prior)
    out["train"] = dict(base, stems=semiseg.read_split_list(root, cfg.train_split))
    if cfg.train_priors:
        out["train"]["prior_dir"] = cfg.train_priors
    if cfg.val_split:
        out["val"] = dict(base, stems=semiseg.read_split_list(root, cfg.val_split))
        if cfg.val_priors:  # e.g. a binary model's maps of the val slices: selection under inference conditions
            out["val"]["prior_dir"] = cfg.val_priors
    return out


def build_model(name: str, encoder_weights: str | None):
    """A registered baseline with 4 input channels and 3 classes (Inf-Net itself is binary-only)."""
    from infnet.models.baselines import BASELINES

    if name == DENSITY:
        raise InfnetError(f"'{DENSITY}' is fitted by `{FIT_DENSITY}`, not trained")
    if name not in BASELINES:
        raise InfnetError(f"'{name}' cannot do multi-class segmentation; choose from: {', '.join(BASELINES)}")
    return create_model(name, encoder_weights=encoder_weights, in_chans=IN_CHANS, num_classes=NUM_CLASSES)


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of the infection classes (1..C-1), over the batch. logits (B,C,H,W), labels (B,H,W) int64.

    Pooled over the batch and smoothed by ``eps``, so a batch without a class gives a loss near 0 for it.
    """
    prob = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(prob.dtype)
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    total = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def multiclass_loss(outputs: dict, labels: torch.Tensor, dice: bool = False) -> torch.Tensor:
    """Cross-entropy (+ soft Dice of GGO and consolidation with ``dice``) summed over the side outputs."""
    total = 0.0
    for m in outputs["maps"]:
        m = m.float()
        total = total + F.cross_entropy(m, labels) + (soft_dice_loss(m, labels) if dice else 0.0)
    return total


@torch.inference_mode()
def validate(model, dataset: MultiClassDataset, device: torch.device, batch_size: int = 8) -> float:
    """Mean per-image Dice over GGO and consolidation (argmax prediction)."""
    model.eval()
    scores = []
    for x, y in iter_batches(dataset, batch_size):
        x, y = x.to(device), y.to(device)
        pred = model(x)["out"].argmax(dim=1)
        scores.append(class_dice(pred, y).mean(dim=1).cpu())
    model.train()
    return float(torch.cat(scores).mean())


def _resize_batch(x: torch.Tensor, y: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x, y
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = F.interpolate(y[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
    return x, y


def train_multiclass(cfg: MultiClassConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train per ``cfg`` into ``run_dir``; returns the best checkpoint. ``resume`` continues from state.pt."""
    from infnet.data.dataset import scaled_size

    run_dir = Path(run_dir)
    cfg = open_run(run_dir, cfg, resume)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    data = resolve_data(cfg)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    fresh = not resume and not cfg.init_checkpoint
    model = build_model(cfg.model, cfg.encoder_weights if fresh else None)
    if cfg.init_checkpoint and not resume:
        init_from_checkpoint(model, cfg.init_checkpoint, cfg.model)
    model = model.to(device, memory_format=memory_format)
    norm = dict(size=cfg.train_size, mean=model.mean, std=model.std)
    train_set = MultiClassDataset(
        **data["train"],
        **norm,
        augment=cfg.augment,
        prior_noise=cfg.prior_noise,
        gt_prior_rate=cfg.gt_prior_rate,
        soft_prior=cfg.soft_prior,
        rotate=cfg.rotate,
        presentation=PresentationAugment(p_window_extremes=cfg.window_extremes) if cfg.presentation else None,
    )
    val_sets = []
    if "val" in data:
        val = MultiClassDataset(**data["val"], **norm, soft_prior=cfg.soft_prior)
        val_sets = [val]
        if cfg.presentation:  # selection under the fixed views, as for the binary robust models
            val_sets = [copy.copy(val) for _ in VALIDATION_VIEWS]
            for v, view in zip(val_sets, VALIDATION_VIEWS, strict=True):
                v.view = view
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start_epoch, best = 0, -1.0
    if resume:
        start_epoch, best = restore(run_dir, model, optimizer)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", cfg.to_json())
    sizes = [scaled_size(cfg.train_size, r) for r in cfg.rates]
    extra = {"input_size": cfg.train_size, "task": "multiclass", "classes": list(CLASSES)}
    if cfg.soft_prior:  # inference must feed the infection probability, not its binarisation
        extra["soft_prior"] = True
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_at(epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=gen)
        losses = []
        model.train()
        for x, y in progress_bar(loader, f"epoch {epoch + 1}/{cfg.epochs}", progress):
            x, y = x.to(device), y.to(device)
            for size in sizes:
                xs, ys = _resize_batch(x, y, size)
                xs = xs.contiguous(memory_format=memory_format)
                optimizer.zero_grad(set_to_none=True)
                loss = multiclass_loss(model(xs), ys, dice=cfg.loss == "ce+dice")
                loss.backward()
                torch.nn.utils.clip_grad_value_(model.parameters(), cfg.clip)
                optimizer.step()
                losses.append(float(loss.detach()))
        val_dice = float(np.mean([validate(model, v, device) for v in val_sets])) if val_sets else None
        best = save_epoch(run_dir, model, epoch, val_dice, best, extra)
        save_state(run_dir, epoch, optimizer, best)
        val_dice = float("nan") if val_dice is None else val_dice
        row = dict(
            epoch=epoch + 1,
            lr=cfg.lr_at(epoch),
            train_loss=round(float(np.mean(losses)), 5),
            val_dice=round(val_dice, 5),
            seconds=round(time.time() - t0, 1),
        )
        append_csv(run_dir / "metrics.csv", row)
        if progress:
            print(f"epoch {epoch + 1}: loss {row['train_loss']:.4f} val_dice {val_dice:.4f} ({row['seconds']} s)")
    return run_dir / "best.safetensors"
