"""Model registry and the one factory, ``create_model(name)``; self-describing safetensors checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from infnet.errors import InfnetError
from infnet.models import weights as bundled
from infnet.models.infnet import InfNet, InfNetConfig

# Optional model families register themselves on import (see the end of this module).

_ARCHS: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}
# Families whose bundled models are stored one checkpoint per member: arch -> loader(member paths) -> model.
_FROM_FILES: dict[str, Callable[[list[Path]], nn.Module]] = {}

# Table IV of the paper: No.1 backbone, No.2 +PPD, No.3 +RA, No.4 +PPD+RA, No.5 +PPD+RA+EA (= Inf-Net).
ABLATIONS = {
    "no1": dict(use_ppd=False, use_ra=False, use_edge=False),
    "no2": dict(use_ppd=True, use_ra=False, use_edge=False),
    "no3": dict(use_ppd=False, use_ra=True, use_edge=False),
    "no4": dict(use_ppd=True, use_ra=True, use_edge=False),
    "no5": dict(use_ppd=True, use_ra=True, use_edge=True),
}
ENCODER_ALIASES = {"res2net50": "res2net50_v1b", "effl2": "efficientnet_lite2", "effl0": "efficientnet_lite0"}


def register_model(name: str, description: str = ""):
    """Decorator adding a builder ``fn(**kwargs) -> nn.Module`` under ``name``."""

    def wrap(fn):
        _ARCHS[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        return fn

    return wrap


def register_member_files_loader(name: str):
    """Decorator adding ``fn(paths) -> nn.Module`` that loads a bundled ``name`` stored one file per member."""

    def wrap(fn):
        _FROM_FILES[name] = fn
        return fn

    return wrap


def _infnet_builder(encoder: str, flags: dict):
    def build(encoder_weights: str | None = "imagenet", **kw) -> InfNet:
        cfg = InfNetConfig(**{"encoder": encoder, **flags, **kw})
        return InfNet(cfg, encoder_weights=encoder_weights)

    return build


for _alias, _enc in ENCODER_ALIASES.items():
    register_model(f"infnet-{_alias}", f"Inf-Net, {_enc} encoder")(_infnet_builder(_enc, ABLATIONS["no5"]))
    for _abl, _flags in ABLATIONS.items():
        register_model(f"infnet-{_alias}-{_abl}", f"Inf-Net ablation {_abl.upper()}, {_enc} encoder")(
            _infnet_builder(_enc, _flags)
        )


def list_models(include_ablations: bool = True) -> list[str]:
    """Registered architecture names (bundled trained models: :func:`infnet.models.weights.list_bundled`)."""
    names = sorted(_ARCHS)
    return names if include_ablations else [n for n in names if "-no" not in n]


def describe_model(name: str) -> str:
    return _DESCRIPTIONS.get(name, "")


def create_model(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a model by registered name, or load a bundled trained model by its name.

    ``pretrained=True`` with an architecture name loads ImageNet encoder weights where available
    (same as ``encoder_weights='imagenet'``); bundled model names always load their trained weights.
    Unknown names raise :class:`InfnetError` listing the choices.
    """
    if name in bundled.list_bundled():
        return load_bundled(name)
    if name not in _ARCHS:
        choices = ", ".join(list_models(include_ablations=False) + bundled.list_bundled())
        raise InfnetError(f"unknown model '{name}'; choose from: {choices} (ablations: <arch>-no1..no5)")
    kwargs.setdefault("encoder_weights", "imagenet" if pretrained else None)
    model = _ARCHS[name](**kwargs)
    model.arch_name = name
    return model


def load_bundled(name: str) -> nn.Module:
    """Load a bundled trained model after checking its files' sha256 against the registry."""
    paths, entry = bundled.verified_files(name)
    if "member_files" in entry:
        model = _load_members(paths, entry)
    else:
        model = load_checkpoint(paths[0], expect_arch=entry["arch"])
    model.bundled_entry = entry
    return model


def _load_members(paths: list[Path], entry: dict) -> nn.Module:
    """A bundled model stored in several files (registry ``member_files``), built by its family's loader."""
    if entry["arch"] not in _FROM_FILES:
        raise InfnetError(f"bundled model '{entry['name']}': architecture '{entry['arch']}' is not stored by member")
    model = _FROM_FILES[entry["arch"]](paths)
    # What a one-file checkpoint would carry in its metadata (the predictors read input size and temperature).
    meta = {"arch": entry["arch"], "config": model.config.to_dict(), "input_size": entry["input_size"]}
    meta.update(name=entry["name"], temperature=entry.get("temperature", 1.0))
    if entry.get("task") == "multiclass":
        meta.update(task="multiclass", classes=entry.get("classes"))
    model.checkpoint_meta = meta
    model.weights_sha256 = entry["sha256"]  # the combined digest: the ONNX cache key
    return model.eval()


def model_spec(model: nn.Module) -> dict:
    """What is needed to rebuild ``model``: registry name and architecture config."""
    return {"arch": getattr(model, "arch_name", "infnet"), "config": model.config.to_dict()}


def save_checkpoint(model: nn.Module, path: str | Path, extra: dict | None = None, half: bool = False) -> None:
    """Write the model's weights as safetensors with its architecture in the metadata (atomic)."""
    from safetensors.torch import save

    from infnet.io.images import atomic_write_bytes

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    meta = {"infnet": json.dumps({**model_spec(model), **(extra or {})})}
    atomic_write_bytes(path, save(state, metadata=meta))


def read_checkpoint_meta(path: str | Path) -> dict:
    """The ``infnet`` metadata of a checkpoint written by :func:`save_checkpoint`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InfnetError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise InfnetError(f"{path}: not a readable safetensors checkpoint ({exc.__class__.__name__})") from None
    if "infnet" not in meta:
        raise InfnetError(f"{path}: safetensors file has no infnet architecture metadata")
    try:
        parsed = json.loads(meta["infnet"])
    except json.JSONDecodeError:
        raise InfnetError(f"{path}: infnet metadata of the checkpoint is not valid JSON") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("arch"), str):
        raise InfnetError(f"{path}: infnet metadata of the checkpoint has no architecture name ('arch')")
    if not isinstance(parsed.get("config", {}), dict):
        raise InfnetError(f"{path}: infnet metadata 'config' of the checkpoint is not a mapping")
    return parsed


def load_checkpoint(path: str | Path, expect_arch: str | None = None) -> nn.Module:
    """Rebuild the model stored in an infnet safetensors checkpoint and load its weights (float32, eval mode)."""
    from safetensors.torch import load_file

    meta = read_checkpoint_meta(path)
    if expect_arch is not None and meta["arch"] != expect_arch:
        raise InfnetError(f"{path}: checkpoint is a '{meta['arch']}', expected '{expect_arch}'")
    if meta.get("arch") not in _ARCHS:
        raise InfnetError(f"{path}: checkpoint architecture '{meta.get('arch')}' is not registered in this infnet")
    # Every registered builder takes its model's config.to_dict() back as keyword arguments.
    try:
        model = _ARCHS[meta["arch"]](encoder_weights=None, **meta.get("config", {}))
    except (TypeError, ValueError, KeyError) as exc:  # unknown or ill-typed config keys (another infnet version?)
        detail = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise InfnetError(f"{path}: checkpoint config does not fit architecture '{meta['arch']}': {detail}") from None
    model.arch_name = meta["arch"]
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # truncated or corrupt tensor data behind a readable header
        raise InfnetError(f"{path}: checkpoint tensors are unreadable ({exc.__class__.__name__})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    load_state_strict(model, state, path)
    model.checkpoint_meta = meta
    return model.eval()


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source) -> None:
    """load_state_dict(strict) with a one-line error naming the mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shape:
            k = shape[0]
            parts.append(f"{len(shape)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise InfnetError(
            f"{source}: weights do not fit architecture {getattr(model, 'arch_name', '?')}: " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)


def _register_optional_families() -> None:
    """Import model families living in their own modules (they call :func:`register_model`)."""
    import importlib

    for module in ("infnet.models.baselines", "infnet.models.density", "infnet.models.ensemble"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing optional dependency inside the family: skip it too
                if exc.name and not exc.name.startswith("infnet"):
                    continue
                raise


_register_optional_families()
