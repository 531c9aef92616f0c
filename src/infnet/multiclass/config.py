"""Multi-class training settings (kept free of torch so the CLI parser stays cheap to build)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from infnet.errors import InfnetError


@dataclass
class MultiClassConfig:
    """Multi-class training settings; saved as config.json (``task`` marks the run directory's kind)."""

    model: str = "fcn8s-effl2"
    encoder_weights: str | None = "imagenet"
    init_checkpoint: str | None = None  # whole-model checkpoint of the same architecture to start from (fine-tuning)
    data: str | None = None  # COVID-SemiSeg root (MultiClassInfection-Train + split lists)
    train_split: str = "train"
    val_split: str | None = "val"
    train_images: str | None = None
    train_labels: str | None = None
    train_priors: str | None = None  # None: the prior is the GT infection mask (label > 0)
    val_images: str | None = None
    val_labels: str | None = None
    val_priors: str | None = None
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-4
    decay_epoch: int = 50
    decay_rate: float = 0.1
    clip: float = 0.5
    train_size: int = 352
    rates: list[float] = field(default_factory=lambda: [1.0])
    augment: bool = False
    rotate: float = 0.0  # with augment: random rotation within +-rotate degrees (the binary trainer uses 15)
    # Perturb the training prior (random dilation/erosion, cut-out boxes) so that the model learns to correct an
    # imperfect infection map from the image, as it must at inference (the prior then comes from a model).
    prior_noise: bool = False
    # With train_priors (e.g. a binary model's maps of the training slices): the chance per sample of using the
    # ground-truth infection mask instead. The multi-class model follows its prior's boundary closely, so training
    # only on exact GT priors leaves it unprepared for a model's map at inference.
    gt_prior_rate: float = 0.0
    # Feed the infection prior as a probability (grey levels / 255) instead of binarised at 0.5, at training
    # (given priors keep their grey levels; the GT prior is 0/1) and at inference (the checkpoint says so).
    soft_prior: bool = False
    # Robust presentation (issue 15), as for the binary models: the slice, its label and its prior drawn in a
    # random orientation, lung window and field of view; validation is the mean over the fixed views.
    presentation: bool = False
    window_extremes: float = 0.0  # share of the random windows set at the ends of the level/width ranges
    loss: str = "ce"  # "ce" (the paper's FCN8s) or "ce+dice" (adds soft Dice of GGO and consolidation)
    seed: int = 0
    device: str = "auto"
    channels_last: bool = True  # NHWC activations: faster training steps on CPU
    task: str = "multiclass"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> MultiClassConfig:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InfnetError(f"{path}: cannot read training config ({exc.__class__.__name__})") from None
        if d.get("task") != "multiclass":
            raise InfnetError(f"{path.parent}: not a multi-class run directory (model '{d.get('model', '?')}')")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise InfnetError(f"{path}: unknown multi-class config keys: {', '.join(unknown)}")
        return cls(**d)

    def lr_at(self, epoch: int) -> float:
        return self.lr * (self.decay_rate if epoch >= self.decay_epoch else 1.0)
