"""Run directories shared by the trainers: config check on resume, tensor-only state, checkpoints, metrics.csv."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from infnet.errors import InfnetError
from infnet.io.images import atomic_write_bytes
from infnet.models.registry import save_checkpoint

METRIC_FIELDS = ["epoch", "lr", "train_loss", "val_dice", "seconds"]


def open_run(run_dir: Path, cfg, resume: bool):
    """The config a run continues with: on ``resume`` the saved one (epoch count may grow), else ``cfg``.

    Refuses to resume a directory without state or of another model, and to start over an existing run.
    """
    state_path = run_dir / "state.pt"
    if not resume:
        if state_path.exists():
            raise InfnetError(f"{run_dir}: run directory already holds a run; use --resume or another --out")
        return cfg
    if not state_path.is_file():
        raise InfnetError(f"{run_dir}: nothing to resume (no state.pt)")
    saved = type(cfg).load(run_dir / "config.json")
    if saved.model != cfg.model:
        raise InfnetError(f"{run_dir}: run directory is for model '{saved.model}', not '{cfg.model}'")
    # The saved config wins (same data, seed, schedule); only the epoch count may be extended.
    saved.epochs = max(saved.epochs, cfg.epochs)
    return saved


def save_state(run_dir: Path, epoch: int, optimizer, best: float, scaler=None) -> None:
    """optimizer + RNG + epoch in ``state.pt`` (tensors and plain containers only: loads with weights_only)."""
    buf = io.BytesIO()
    state = {
        "epoch": torch.tensor(epoch),
        "best": torch.tensor(best),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng_cpu": torch.get_rng_state(),
    }
    torch.save(state, buf)
    atomic_write_bytes(run_dir / "state.pt", buf.getvalue())


def restore(run_dir: Path, model, optimizer, scaler=None) -> tuple[int, float]:
    """Load last weights, optimizer, scaler and RNG; returns (first epoch to run, best score so far)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(run_dir / "last.safetensors")))
    state = torch.load(run_dir / "state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    return int(state["epoch"]) + 1, float(state["best"])


def save_epoch(run_dir: Path, model, epoch: int, val_dice: float | None, best: float, extra: dict) -> float:
    """Write last.safetensors, and best.safetensors when validation Dice ties or beats ``best``.

    Without validation (``val_dice`` None) the latest epoch is the best. Returns the new best score.
    """
    meta = {**extra, "epoch": epoch + 1, "val_dice": val_dice}
    save_checkpoint(model, run_dir / "last.safetensors", extra=meta)
    score = float(epoch) if val_dice is None else val_dice
    if score >= best:
        save_checkpoint(model, run_dir / "best.safetensors", extra=meta)
        return score
    return best


def append_csv(path: Path, row: dict) -> None:
    """Append one epoch row to metrics.csv (header on first write)."""
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def progress_bar(iterable, desc: str, enabled: bool):
    """tqdm over ``iterable`` when enabled (loss and ETA in the bar), else the iterable itself."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)
