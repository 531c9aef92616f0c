"""Typed training configuration, saved as ``config.json`` next to every checkpoint (seed included)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from infnet.errors import InfnetError


@dataclass
class TrainConfig:
    """Paper defaults (section IV-A): 352x352, multi-scale {0.75, 1, 1.25}, Adam 1e-4, 100 epochs, x0.1 at 50."""

    model: str = "infnet-effl2"
    encoder_weights: str | None = "imagenet"  # 'imagenet', a checkpoint path, or None
    init_checkpoint: str | None = None  # whole-model infnet checkpoint to start from (fine-tuning)
    # Data: a COVID-SemiSeg root (split lists) or explicit folders.
    data: str | None = None
    train_split: str = "train"  # stems list of MultiClassInfection-Train: train (45) / trainval (50)
    val_split: str | None = "val"  # 5 slices; None disables validation (keeps the last epoch)
    train_images: str | None = None
    train_masks: str | None = None
    train_edges: str | None = None
    val_images: str | None = None
    val_masks: str | None = None
    test_images: str | None = None  # final evaluation only, never used for selection
    test_masks: str | None = None
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-4
    decay_epoch: int = 50  # lr x decay_rate from this epoch on (once, not compounding)
    decay_rate: float = 0.1
    clip: float = 0.5  # gradient clipping by value
    train_size: int = 352
    rates: list[float] = field(default_factory=lambda: [0.75, 1.0, 1.25])
    augment: bool = False
    # Robust presentation (issue 15; the bundled robust models' recipe): random flips/rotations of the plane,
    # lung windows, synthetic full field of view and tighter crops; validation is then the mean Dice over
    # fixed views (infnet.data.presentation.VALIDATION_VIEWS).
    presentation: bool = False
    window_extremes: float = 0.0  # share of the random windows set at the ends of the level/width ranges
    # Healthy-lung negatives: HU volumes (NIfTI/NRRD/MHA/DICOM folder) whose lung slices train with an empty
    # mask, ``negatives_per_epoch`` of them drawn each epoch (lung-box crops as the scan pipeline makes them,
    # and whole slices).
    negatives: list[str] = field(default_factory=list)
    negatives_per_epoch: int = 0
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # mixed precision, only on CUDA
    # NHWC activations: measured 1.3-1.5x faster training steps on a 2-core AVX2 CPU (EfficientNet-Lite2 models).
    channels_last: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InfnetError(f"unknown training config keys: {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InfnetError(f"{path}: cannot read training config ({exc.__class__.__name__})") from None

    def lr_at(self, epoch: int) -> float:
        """Learning rate for a 0-based epoch: one step decay (the official code compounds it every epoch)."""
        return self.lr * (self.decay_rate if epoch >= self.decay_epoch else 1.0)
