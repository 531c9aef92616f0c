"""Ensemble: the mean logits of several trained models of one architecture (e.g. seeds of one recipe).

Averaging the logits of independently trained networks removes part of each one's seed-dependent error (the
seeds of one recipe differ by 0.01-0.02 test Dice@0.5 here: benchmarks/reproduce.md). It is a model like any other:
``forward`` returns ``{"out": mean of the members' "out" logits}``, it saves to one safetensors checkpoint
(members' weights under ``members.<i>.``) with its members' architecture in the metadata, and a bundled ensemble
loads by name (bundled ones are stored one checkpoint per member, so a member that also ships alone is stored once:
:func:`infnet.models.registry.load_bundled`). It costs one forward pass per member. Members are averaged before
any output temperature, which the ensemble carries as one model (:mod:`infnet.calibration`). It is built from
checkpoints (:func:`build_ensemble`, ``infnet ensemble``), never trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from infnet.errors import InfnetError
from infnet.models.registry import (
    create_model,
    list_models,
    load_checkpoint,
    register_member_files_loader,
    register_model,
)

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


@register_member_files_loader(ENSEMBLE)
def _from_member_files(paths: list[Path]) -> Ensemble:
    """A bundled ensemble stored one checkpoint per member (:func:`infnet.models.registry.load_bundled`)."""
    return build_ensemble(paths)[0]
