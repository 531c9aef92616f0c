"""The training loop: multi-scale deep supervision, per-epoch validation, resumable safetensors checkpoints.

Run directory layout::

    run/config.json            resolved TrainConfig (with seed)
    run/metrics.csv            epoch, lr, train_loss, val_dice, seconds
    run/last.safetensors       model weights after the last finished epoch
    run/best.safetensors       best validation Dice (or the last epoch without validation)
    run/state.pt               optimizer + RNG + epoch, for --resume (tensor-only, loaded weights_only)
    run/eval/                  final test predictions and metrics when a test set is given
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader

from infnet.data import semiseg
from infnet.data.dataset import SliceDataset, iter_batches, multiscale_batch, scaled_size
from infnet.data.presentation import VALIDATION_VIEWS, PresentationAugment
from infnet.errors import InfnetError
from infnet.io.images import atomic_write_text
from infnet.models.density import DENSITY, FIT_DENSITY
from infnet.models.ensemble import BUILD_ENSEMBLE, ENSEMBLE
from infnet.models.registry import create_model
from infnet.training.config import TrainConfig
from infnet.training.losses import infnet_loss
from infnet.training.rundir import append_csv, open_run, progress_bar, restore, save_epoch, save_state


def _distributed() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def resolve_data(cfg: TrainConfig) -> dict:
    """Folders and stem lists for train / val / test from the config."""
    out: dict = {}
    if cfg.train_images:
        if not cfg.train_masks:
            raise InfnetError(f"{cfg.train_images}: training images given without --train-masks")
        out["train"] = dict(image_dir=cfg.train_images, mask_dir=cfg.train_masks, edge_dir=cfg.train_edges)
    else:
        root = Path(cfg.data) if cfg.data else semiseg.find_dataset()
        split = semiseg.SPLITS["doctor-label"]
        stems = semiseg.read_split_list(root, cfg.train_split)
        out["train"] = dict(
            image_dir=root / split.image_dir,
            mask_dir=root / split.mask_dir,
            edge_dir=root / split.edge_dir,
            stems=stems,
        )
        if cfg.val_split and not cfg.val_images:
            out["val"] = dict(
                image_dir=root / split.image_dir,
                mask_dir=root / split.mask_dir,
                stems=semiseg.read_split_list(root, cfg.val_split),
            )
    if cfg.val_images:
        out["val"] = dict(image_dir=cfg.val_images, mask_dir=cfg.val_masks)
    if cfg.test_images:
        out["test"] = dict(image_dir=cfg.test_images, mask_dir=cfg.test_masks)
    return out


def build_datasets(cfg: TrainConfig, data: dict, mean, std) -> tuple[torch.utils.data.Dataset, list[SliceDataset]]:
    """The training set (positives, plus negatives when configured) and the validation set(s).

    With ``cfg.presentation`` training draws random presentations and validation is one set per fixed view.
    """
    if bool(cfg.negatives) != (cfg.negatives_per_epoch > 0):
        raise InfnetError("--negatives and --negatives-per-epoch N (N > 0) go together")
    presentation = PresentationAugment(p_window_extremes=cfg.window_extremes) if cfg.presentation else None
    size, aug = cfg.train_size, cfg.augment
    train_set = SliceDataset(**data["train"], size=size, mean=mean, std=std, augment=aug, presentation=presentation)
    if cfg.negatives:
        from infnet.training.negatives import NegativeDataset, load_negative_slices

        pool = load_negative_slices(cfg.negatives)
        negatives = NegativeDataset(pool, cfg.negatives_per_epoch, size, mean, std, presentation, aug)
        train_set = ConcatDataset([train_set, negatives])
    if "val" not in data:
        return train_set, []
    val = SliceDataset(**data["val"], size=size, mean=mean, std=std)
    if not cfg.presentation:
        return train_set, [val]
    views = []
    for view in VALIDATION_VIEWS:
        v = copy.copy(val)
        v.view = view
        views.append(v)
    return train_set, views


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.inference_mode()
def validate(model, dataset: SliceDataset, device: torch.device, batch_size: int = 8) -> float:
    """Mean per-image Dice at probability >= 0.5 (empty GT and empty prediction count as 1)."""
    model.eval()
    dices = []
    for images, masks, _ in iter_batches(dataset, batch_size):
        images, masks = images.to(device), masks.to(device) > 0.5
        pred = torch.sigmoid(model(images)["out"]) >= 0.5
        inter = (pred & masks).sum(dim=(1, 2, 3)).float()
        total = (pred.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3))).float()
        dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))
        dices += dice.tolist()
    model.train()
    return float(np.mean(dices))


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train per ``cfg`` into ``run_dir``; returns the path of the best checkpoint.

    ``resume`` continues from ``run_dir/state.pt`` (the last finished epoch), restoring optimizer and RNG.
    Under ``torchrun`` (WORLD_SIZE > 1) it trains data-parallel (gloo on CPU, nccl on CUDA); rank 0 writes.
    """
    if cfg.model == DENSITY:
        raise InfnetError(f"'{DENSITY}' is fitted, not trained, and splits an infection map: use `{FIT_DENSITY}`")
    if cfg.model == ENSEMBLE:
        raise InfnetError(f"'{ENSEMBLE}' is not trained: train its members, then combine them with `{BUILD_ENSEMBLE}`")
    run_dir = Path(run_dir)
    rank, world = _distributed()
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo"
        torch.distributed.init_process_group(backend)
    cfg = open_run(run_dir, cfg, resume)
    torch.manual_seed(cfg.seed + rank)
    device = pick_device(cfg.device)
    data = resolve_data(cfg)
    fresh_encoder = not resume and not cfg.init_checkpoint
    model = create_model(cfg.model, encoder_weights=cfg.encoder_weights if fresh_encoder else None).to(device)
    if cfg.init_checkpoint and not resume:
        init_from_checkpoint(model, cfg.init_checkpoint, cfg.model)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    mean, std = model.mean, model.std
    train_set, val_sets = build_datasets(cfg, data, mean, std)
    if not val_sets and progress and rank == 0:  # e.g. --train-images without --val-images: say what "best" means
        print("no validation set (--val-images/--val-masks, or --val-split with COVID-SemiSeg): "
              "best.safetensors is the last epoch", file=sys.stderr, flush=True)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    start_epoch, best = 0, -1.0
    if resume:
        start_epoch, best = restore(run_dir, model, optimizer, scaler)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", cfg.to_json())
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    sampler = (
        torch.utils.data.distributed.DistributedSampler(train_set, shuffle=True, seed=cfg.seed) if world > 1 else None
    )
    sizes = [scaled_size(cfg.train_size, r) for r in cfg.rates]
    metrics_path = run_dir / "metrics.csv"
    epoch_times: list[float] = []
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_at(epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # same order after a resume
        if sampler is not None:
            sampler.set_epoch(epoch)
        loader = DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=gen,
            num_workers=cfg.num_workers,
            drop_last=False,
        )
        losses = []
        bar = progress_bar(loader, f"epoch {epoch + 1}/{cfg.epochs}", progress and rank == 0)
        net.train()
        for images, masks, edges in bar:
            images, masks, edges = images.to(device), masks.to(device), edges.to(device)
            for size in sizes:
                x, m, e = multiscale_batch(images, masks, edges, size)
                x = x.contiguous(memory_format=memory_format)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, enabled=use_amp):
                    out = net(x)
                loss = infnet_loss({k: _f32(v) for k, v in out.items()}, m, e)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_value_(model.parameters(), cfg.clip)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    torch.nn.utils.clip_grad_value_(model.parameters(), cfg.clip)
                    optimizer.step()
                losses.append(float(loss.detach()))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{np.mean(losses[-len(sizes) :]):.3f}")
        if rank != 0:
            continue
        val_dice = float(np.mean([validate(model, v, device) for v in val_sets])) if val_sets else None
        best = save_epoch(run_dir, model, epoch, val_dice, best, extra={"input_size": cfg.train_size})
        save_state(run_dir, epoch, optimizer, best, scaler)
        val_dice = float("nan") if val_dice is None else val_dice
        row = dict(
            epoch=epoch + 1,
            lr=cfg.lr_at(epoch),
            train_loss=round(float(np.mean(losses)), 5),
            val_dice=round(val_dice, 5),
            seconds=round(time.time() - t0, 1),
        )
        append_csv(metrics_path, row)
        if progress:
            epoch_times.append(row["seconds"])
            eta_min = np.mean(epoch_times) * (cfg.epochs - epoch - 1) / 60
            print(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.4f} val_dice {val_dice:.4f} "
                f"({row['seconds']} s, ETA {eta_min:.0f} min)",
                flush=True,
            )
    if world > 1:
        torch.distributed.barrier()
    best_path = run_dir / "best.safetensors"
    if rank == 0 and "test" in data:
        from infnet.training.final_eval import evaluate_checkpoint

        evaluate_checkpoint(best_path, data["test"]["image_dir"], data["test"]["mask_dir"], run_dir / "eval")
    return best_path


def init_from_checkpoint(model: torch.nn.Module, path: str | Path, arch: str) -> None:
    """Load a whole-model infnet checkpoint of the same architecture into ``model`` (for fine-tuning)."""
    from safetensors.torch import load_file

    from infnet.models.registry import load_state_strict, read_checkpoint_meta

    meta = read_checkpoint_meta(path)
    if meta["arch"] != arch:
        raise InfnetError(f"{path}: checkpoint is a '{meta['arch']}', expected '{arch}'")
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    load_state_strict(model, state, path)


def _f32(v):
    if isinstance(v, list):
        return [t.float() for t in v]
    return v.float() if isinstance(v, torch.Tensor) else v
