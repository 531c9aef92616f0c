"""Bundled trained weights: safetensors files in ``infnet/weights`` plus a JSON registry entry each.

The files and their entries only; :func:`infnet.models.registry.load_bundled` builds the model.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from infnet.errors import InfnetError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
REGISTRY_FILE = WEIGHTS_DIR / "registry.json"
DEFAULT_MODEL = "infnet-effl2-semiseg"  # the paper recipe: `predict`, `evaluate` and the library's default
DEFAULT_MULTICLASS_MODEL = "density-split-multiclass-semiseg"  # `infnet segment --multiclass` on volumes
# `infnet segment` and `demo` on volumes without --model (canonicalised by the pipeline, so the native score is
# what counts): DEFAULT_MODEL averaged with the robust Semi-Inf-Net, chosen on validation (docs/robustness.md).
DEFAULT_VOLUME_MODEL = "infnet-effl2-mixed-ens2-semiseg"
# `infnet segment` and `demo` on 2D slices without --model: their orientation, window and field of view are
# unknown, and this model holds up under all of them (docs/robustness.md).
DEFAULT_2D_MODEL = "infnet-effl2-semi-robust-ens2-semiseg"
# `infnet segment --multiclass` on 2D slices: the density split reads grey levels as the training window's HU,
# so an unknown window moves its GGO / consolidation boundary; this one is trained for any window.
DEFAULT_2D_MULTICLASS_MODEL = "fcn8s-effl2-robust-multiclass-semiseg"


@lru_cache(maxsize=1)
def _registry() -> dict[str, dict]:
    if not REGISTRY_FILE.is_file():
        return {}
    entries = json.loads(REGISTRY_FILE.read_text())
    return {e["name"]: e for e in entries}


def list_bundled() -> list[str]:
    """Names of the trained models shipped inside the package."""
    return sorted(_registry())


def bundled_entry(name: str) -> dict:
    """The registry entry (name, arch, file, sha256, input size, normalisation, data, licence, metrics)."""
    reg = _registry()
    if name not in reg:
        raise InfnetError(f"unknown bundled model '{name}'; choose from: {', '.join(sorted(reg)) or '(none)'}")
    return reg[name]


def presentation_trained(name: object) -> bool:
    """Whether ``name`` is a bundled model trained with the robust presentation recipe (any orientation, lung
    window, field of view): its registry entry says so (ensembles: every member was)."""
    return isinstance(name, str) and bool(_registry().get(name, {}).get("presentation", False))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weight_files(entry: dict) -> list[dict]:
    """The files holding a bundled model's weights, each ``{"file", "sha256"}``: one file, or for an ensemble
    stored by member one per member (a member that also ships alone is that model's file, not a copy)."""
    return entry.get("member_files") or [{"file": entry["file"], "sha256": entry["sha256"]}]


def combined_sha256(digests: list[str]) -> str:
    """One digest for a model stored in several files (its identity, e.g. the ONNX cache key)."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def verified_files(name: str) -> tuple[list[Path], dict]:
    """The weights files of bundled model ``name`` and its registry entry, after checking each file's sha256.

    Loading them into a model is :func:`infnet.models.registry.load_bundled` (this module only knows the files).
    """
    entry = bundled_entry(name)
    paths = []
    for item in weight_files(entry):
        path = WEIGHTS_DIR / item["file"]
        if not path.is_file():
            raise InfnetError(f"{path}: bundled weights file missing (reinstall infnet)")
        digest = sha256_file(path)
        if digest != item["sha256"]:
            raise InfnetError(f"{path}: sha256 {digest[:12]}... does not match the registry ({item['sha256'][:12]}...)")
        paths.append(path)
    return paths, entry
