"""Run directories shared by the trainers: config check on resume, tensor-only state, checkpoints, metrics.csv.

``state.pt`` records the sha256 of the ``last.safetensors`` it belongs to. An epoch is saved as: keep the previous
weights as ``prev.safetensors``, write the new ``last.safetensors``, write ``state.pt``, drop ``prev``. A kill at
any point leaves one (weights, state) pair that belongs together, and ``restore`` resumes from that pair.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import torch

from infnet.errors import InfnetError
from infnet.io.images import atomic_write_bytes
from infnet.models.registry import save_checkpoint

METRIC_FIELDS = ["epoch", "lr", "train_loss", "val_dice", "seconds"]
# Config fields checked before a run starts (when the config has them): > 0, or >= 0.
POSITIVE = ("epochs", "batch_size", "train_size", "clip")
NON_NEGATIVE = ("lr", "decay_rate", "decay_epoch", "num_workers", "negatives_per_epoch", "rotate", "gt_prior_rate")


def check_config(cfg) -> None:
    """Refuse non-positive (or non-finite) counts, sizes and rates before anything is written."""
    for name, strict in [(n, True) for n in POSITIVE] + [(n, False) for n in NON_NEGATIVE]:
        value = getattr(cfg, name, None)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value) or (value <= 0 if strict else value < 0):
            flag = "--" + name.replace("_", "-")
            raise InfnetError(f"{flag} {value}: must be {'> 0' if strict else '>= 0'}")
    rates = getattr(cfg, "rates", None)
    if rates is not None and (not rates or any(not math.isfinite(r) or r <= 0 for r in rates)):
        raise InfnetError(f"--rates {' '.join(str(r) for r in rates) or '(none)'}: give one or more scales > 0")


def open_run(run_dir: Path, cfg, resume: bool):
    """The config a run continues with: on ``resume`` the saved one (epoch count may grow), else ``cfg``.

    Refuses to resume a directory without state or of another model, and to start over an existing run.
    """
    check_config(cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise InfnetError(f"{run_dir}: exists and is not a folder; give a run directory to --out")
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
    check_config(saved)
    return saved


def save_state(run_dir: Path, epoch: int, optimizer, best: float, scaler=None) -> None:
    """optimizer + RNG + epoch in ``state.pt`` (tensors and plain containers only: loads with weights_only).

    Records the sha256 of the ``last.safetensors`` written for this epoch, then drops ``prev.safetensors``.
    """
    from infnet.models.weights import sha256_file

    buf = io.BytesIO()
    state = {
        "checkpoint_sha256": sha256_file(run_dir / "last.safetensors"),
        "epoch": torch.tensor(epoch),
        "best": torch.tensor(best),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng_cpu": torch.get_rng_state(),
    }
    torch.save(state, buf)
    atomic_write_bytes(run_dir / "state.pt", buf.getvalue())
    (run_dir / "prev.safetensors").unlink(missing_ok=True)


def _load_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, a pickle weights_only refuses
        raise InfnetError(f"{path}: unreadable training state ({exc.__class__.__name__}); cannot resume") from None
    if not isinstance(state, dict) or not {"epoch", "best", "optimizer", "rng_cpu"} <= set(state):
        raise InfnetError(f"{path}: not an infnet training state (missing epoch/optimizer/RNG); cannot resume")
    return state


def _weights_for(run_dir: Path, state: dict) -> Path:
    """The checkpoint ``state`` belongs to: ``last.safetensors``, or ``prev`` after a kill while saving."""
    from infnet.models.weights import sha256_file

    last, prev = run_dir / "last.safetensors", run_dir / "prev.safetensors"
    want = state.get("checkpoint_sha256")
    if want is None:  # a state written before the checksum was recorded
        return last
    for path in (last, prev):
        if path.is_file() and sha256_file(path) == want:
            return path
    raise InfnetError(
        f"{run_dir / 'state.pt'}: records epoch {int(state['epoch']) + 1}, but no checkpoint in {run_dir} matches its "
        "sha256 (last.safetensors changed or damaged); cannot resume consistently"
    )


def restore(run_dir: Path, model, optimizer, scaler=None) -> tuple[int, float]:
    """Load last weights, optimizer, scaler and RNG; returns (first epoch to run, best score so far).

    The weights are the checkpoint ``state.pt`` records (by sha256); unreadable files raise :class:`InfnetError`.
    """
    from safetensors.torch import load_file

    state = _load_state(run_dir / "state.pt")
    weights = _weights_for(run_dir, state)
    try:
        tensors = load_file(str(weights))
    except Exception as exc:
        raise InfnetError(f"{weights}: unreadable checkpoint ({exc.__class__.__name__}); cannot resume") from None
    model.load_state_dict(tensors)
    if weights.name == "prev.safetensors":  # killed between the two writes: that pair is the consistent one
        os.replace(weights, run_dir / "last.safetensors")
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
    last = run_dir / "last.safetensors"
    if last.is_file():  # state.pt still belongs to these weights until save_state
        os.replace(last, run_dir / "prev.safetensors")
    save_checkpoint(model, last, extra=meta)
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
