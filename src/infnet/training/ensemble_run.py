"""``infnet ensemble``: an ensemble of trained checkpoints written as a run folder, scored like a trainer's run.

Lives with training (not with the :mod:`infnet.models.ensemble` model) because it validates on the trainer's own
split with the trainer's own measure.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from infnet.data import semiseg
from infnet.data.dataset import SliceDataset
from infnet.errors import InfnetError
from infnet.io.images import atomic_write_text
from infnet.models.ensemble import ENSEMBLE, Ensemble, build_ensemble
from infnet.models.registry import save_checkpoint
from infnet.training.config import TrainConfig
from infnet.training.trainer import resolve_data, validate


def write_ensemble_run(checkpoints: list[str | Path], out_dir: str | Path, data: str | Path | None = None) -> Path:
    """Build an ensemble into a new run folder: ``best.safetensors``, ``config.json``, ``metrics.csv``.

    There is no ``last.safetensors``: nothing is trained, so there is no epoch to choose. ``metrics.csv`` holds
    the members' training rows (column ``member``), so training time adds up; ``config.json`` lists the members
    and their seeds. The checkpoint records the ensemble's Dice on the 5 validation slices when the dataset is
    found (``data``, or the default location), as a trainer's does. Returns the checkpoint path.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InfnetError(f"{out_dir}: output folder exists and is not empty; choose a new one")
    model, extra = build_ensemble(checkpoints)
    val_dice = _val_dice(model, extra.get("input_size", 352), data) if extra.get("task", "binary") == "binary" else None
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, out_dir / "best.safetensors", extra={**extra, "epoch": None, "val_dice": val_dice})
    config = {"model": ENSEMBLE, **model.config.to_dict(), "members": extra["members"]}
    config["member_seeds"] = [_run_config(p).get("seed") for p in checkpoints]
    if "input_size" in extra:
        config["train_size"] = extra["input_size"]
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(out_dir / "metrics.csv", _member_rows(checkpoints))
    return out_dir / "best.safetensors"


def _val_dice(model: Ensemble, size: int, data) -> float | None:
    """Dice at 0.5 on the default validation split, as the trainer measures it; None without the dataset."""
    root = Path(data) if data is not None else semiseg.find_dataset(required=False)
    if root is None:
        return None
    # the trainer's own validation split (TrainConfig's default val_split)
    val = SliceDataset(**resolve_data(TrainConfig(data=str(root)))["val"], size=size, mean=model.mean, std=model.std)
    score = validate(model, val, torch.device("cpu"))
    model.eval()  # validate() leaves models in training mode
    return round(score, 4)


def _run_config(checkpoint: str | Path) -> dict:
    """The training config.json next to a member checkpoint, or {}."""
    path = Path(checkpoint).parent / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _member_rows(checkpoints: list[str | Path]) -> str:
    """The members' metrics.csv rows (from each checkpoint's folder) with a ``member`` column; header only if none."""
    import csv
    import io

    rows = []
    for i, path in enumerate(checkpoints):
        csv_path = Path(path).parent / "metrics.csv"
        if csv_path.is_file():
            with open(csv_path) as fh:
                rows += [{"member": i, **r} for r in csv.DictReader(fh)]
    fields = list(dict.fromkeys(k for r in rows for k in r)) or ["member", "epoch", "seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
