"""Ensemble: the mean logits of several trained models of one architecture (e.g. seeds of one recipe).

Averaging the logits of independently trained networks removes part of each one's seed-dependent error (the
seeds of one recipe differ by 0.01-0.02 test Dice@0.5 here: benchmarks/reproduce.md). It is a model like any other:
``forward`` returns ``{"out": mean of the members' "out" logits}``, it saves to one safetensors checkpoint
(members' weights under ``members.<i>.``) with its members' architecture in the metadata, and a bundled ensemble
loads by name. It costs one forward pass per member. Members are averaged before any output temperature, which the
ensemble carries as one model (:mod:`infnet.calibration`). It is built from checkpoints
(:func:`build_ensemble`, ``infnet ensemble``), never trained.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from infnet.errors import InfnetError
from infnet.models.registry import create_model, list_models, load_checkpoint, register_model, save_checkpoint

ENSEMBLE = "ensemble"  # the registered architecture name
BUILD_ENSEMBLE = "infnet ensemble"  # how one is made
# Checkpoint metadata a member's predictor reads; members must agree on each.
SHARED_META = ("task", "classes", "input_size", "soft_prior")


@dataclass
class EnsembleConfig:
    """Architecture of an ensemble: ``n`` members of registered ``member_arch`` built with ``member_config``."""

    member_arch: str = "infnet-effl2"
    member_config: dict = field(default_factory=dict)
    n: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


class Ensemble(nn.Module):
    """Mean of the members' ``out`` logits (N,C,H,W); inference only."""

    def __init__(self, members: list[nn.Module], config: EnsembleConfig):
        super().__init__()
        if len(members) < 2:
            raise InfnetError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)
        self.config = config
        # Members share one architecture, hence one input normalisation.
        self.mean, self.std = members[0].mean, members[0].std

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training:
            raise InfnetError(f"an ensemble is not trained; train its members and combine them with {BUILD_ENSEMBLE}")
        return {"out": torch.stack([m(x)["out"].float() for m in self.members]).mean(dim=0)}


@register_model(ENSEMBLE, f"mean logits of N trained models of one architecture (built by `{BUILD_ENSEMBLE}`)")
def _build(member_arch: str = "infnet-effl2", member_config: dict | None = None, n: int = 2, **_) -> Ensemble:
    """Empty ensemble of ``n`` ``member_arch`` models (weights come from a checkpoint); ``**_``: encoder_weights."""
    if member_arch == ENSEMBLE or member_arch not in list_models():
        raise InfnetError(f"ensemble member architecture '{member_arch}' is not a registered single model")
    cfg = EnsembleConfig(member_arch, dict(member_config or {}), int(n))
    members = [create_model(member_arch, encoder_weights=None, **cfg.member_config) for _ in range(cfg.n)]
    return Ensemble(members, cfg)


def build_ensemble(checkpoints: list[str | Path]) -> tuple[Ensemble, dict]:
    """Load ``checkpoints`` (infnet safetensors of one architecture and config) into an :class:`Ensemble`.

    Returns (model, metadata to save with it: the members' shared task/classes/input size and their paths).
    """
    if len(checkpoints) < 2:
        raise InfnetError(f"an ensemble needs at least 2 member checkpoints, got {len(checkpoints)}")
    members, metas = [], []
    for path in map(Path, checkpoints):
        if path.is_dir():
            raise InfnetError(f"{path}: a folder; give a checkpoint file (e.g. {path / 'last.safetensors'})")
        model = load_checkpoint(path)
        meta = model.checkpoint_meta
        if meta["arch"] == ENSEMBLE:
            raise InfnetError(f"{path}: already an ensemble; list its members' checkpoints instead")
        first = metas[0] if metas else meta
        if meta["arch"] != first["arch"] or meta["config"] != first["config"]:
            raise InfnetError(
                f"{path}: a '{meta['arch']}' with another configuration than {checkpoints[0]} ('{first['arch']}'); "
                "members must share one architecture"
            )
        for key in SHARED_META:
            if meta.get(key) != first.get(key):
                raise InfnetError(f"{path}: {key} {meta.get(key)!r} differs from {checkpoints[0]}'s {first.get(key)!r}")
        members.append(model)
        metas.append(meta)
    cfg = EnsembleConfig(metas[0]["arch"], metas[0]["config"], len(members))
    ensemble = Ensemble(members, cfg)
    ensemble.arch_name = ENSEMBLE
    extra = {k: metas[0][k] for k in SHARED_META if metas[0].get(k) is not None}
    extra["members"] = [str(p) for p in checkpoints]
    return ensemble.eval(), extra


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
    from infnet.io.images import atomic_write_text

    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(out_dir / "metrics.csv", _member_rows(checkpoints))
    return out_dir / "best.safetensors"


def _val_dice(model: Ensemble, size: int, data) -> float | None:
    """Dice at 0.5 on the default validation split, as the trainer measures it; None without the dataset."""
    from infnet.data import semiseg
    from infnet.data.dataset import SliceDataset
    from infnet.training.config import TrainConfig
    from infnet.training.trainer import resolve_data, validate

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
