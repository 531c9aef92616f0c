"""The COVID-SemiSeg layout (Inf-Net release) and how to find it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from infnet.errors import InfnetError

ENV_VAR = "INFNET_SEMISEG"

# Relative to the dataset root (the folder holding Dataset/ and reference-outputs/).
TRAIN = "Dataset/TrainingSet"
TEST = "Dataset/TestingSet"
DOCTOR = f"{TRAIN}/LungInfection-Train/Doctor-label"
PSEUDO = f"{TRAIN}/LungInfection-Train/Pseudo-label"
# Every this-many-th unlabelled slice (file-name order) is the held-out set that benchmarks/robustness.py
# --split pseudo scores; scripts/pseudo_subset.py leaves the same slices out of pre-training.
PSEUDO_HOLDOUT_STEP = 16
MULTI_TRAIN = f"{TRAIN}/MultiClassInfection-Train"
LUNG_TEST = f"{TEST}/LungInfection-Test"
MULTI_TEST = f"{TEST}/MultiClassInfection-Test"
REFERENCE = "reference-outputs"


@dataclass(frozen=True)
class Split:
    """One image/mask folder pair of the release (mask_dir None for unlabeled data)."""

    name: str
    image_dir: str
    mask_dir: str | None
    edge_dir: str | None = None
    mask_kind: str = "binary"  # binary | multiclass | bool


SPLITS: dict[str, Split] = {
    "doctor-label": Split("doctor-label", f"{DOCTOR}/Imgs", f"{DOCTOR}/GT", f"{DOCTOR}/Edge"),
    "pseudo-label": Split("pseudo-label", f"{PSEUDO}/Imgs", f"{PSEUDO}/GT", f"{PSEUDO}/Edge"),
    "multiclass-train": Split("multiclass-train", f"{MULTI_TRAIN}/Imgs", f"{MULTI_TRAIN}/GT", None, "multiclass"),
    "lung-test": Split("lung-test", f"{LUNG_TEST}/Imgs", f"{LUNG_TEST}/GT"),
    "multiclass-test": Split("multiclass-test", f"{MULTI_TEST}/Imgs", f"{MULTI_TEST}/GT", None, "multiclass"),
    "multiclass-test-ggo": Split("multiclass-test-ggo", f"{MULTI_TEST}/Imgs", f"{MULTI_TEST}/GT-1", None, "bool"),
    "multiclass-test-consolidation": Split(
        "multiclass-test-consolidation", f"{MULTI_TEST}/Imgs", f"{MULTI_TEST}/GT-2", None, "bool"
    ),
}

SPLIT_LISTS = {name: f"{MULTI_TRAIN}/{name}.txt" for name in ("train", "val", "trainval")}


def _repo_root() -> Path:
    # src/infnet/data/semiseg.py -> repo root is four levels up (only meaningful in a source checkout).
    return Path(__file__).resolve().parents[3]


def candidate_roots() -> list[Path]:
    """Where the dataset is looked for, in order: $INFNET_SEMISEG, then ../shared/data next to the checkout/cwd."""
    roots = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    rel = Path("shared/data/COVID-SemiSeg")
    roots += [_repo_root().parent / rel, Path.cwd().parent / rel, Path.cwd() / "shared/data/COVID-SemiSeg"]
    return roots


def find_dataset(required: bool = True) -> Path | None:
    """Return the COVID-SemiSeg root (the folder with ``Dataset/``), or None / raise when absent."""
    for root in candidate_roots():
        if (root / DOCTOR / "Imgs").is_dir():
            return root.resolve()
    if required:
        raise InfnetError(
            f"COVID-SemiSeg dataset not found (looked in {', '.join(str(r) for r in candidate_roots())}); "
            f"set {ENV_VAR}=/path/to/COVID-SemiSeg"
        )
    return None


def read_split_list(root: Path, name: str) -> list[str]:
    """File stems of the train/val/trainval list of MultiClassInfection-Train."""
    path = Path(root) / SPLIT_LISTS[name]
    if not path.is_file():
        raise InfnetError(f"{path}: split list not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
