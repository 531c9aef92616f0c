"""Semi-Inf-Net settings (torch-free, so the CLI parser stays cheap), saved as ``semi.json`` in the run directory.

Defaults are a CPU budget (about two hours for Inf-Net-EffL2 on 2 cores, against the paper's ~50 GPU-hours of
:data:`PAPER_SETTING`): K=400 unlabeled slices per round, so 1600 slices take 4 labelling passes and 3 fine-tuning
rounds of 1 epoch on at most 100 slices each, single-scale 352; then 1 pre-training epoch on all 1600
pseudo-labels and 30 fine-tuning epochs on the doctor labels with the labeled-set model's recipe (multi-scale
0.75/1/1.25, batch 4, lr decay at 3/4 of the epochs), which measured 0.04-0.05 meanDic above 20 single-scale
batch-8 epochs. Measured trade-offs: benchmarks/reproduce.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from infnet.errors import InfnetError

# The paper's setting (Algorithm 1 and section IV-A): about 50 GPU-hours on one Titan RTX.
PAPER_SETTING = dict(
    k=5,  # 1600 / 5 = 320 rounds
    round_cap=None,
    rates=[0.75, 1.0, 1.25],
    pretrain_epochs=100,
    finetune_epochs=100,
    finetune_rates=[0.75, 1.0, 1.25],
    finetune_decay_epoch=50,
)


@dataclass
class SemiConfig:
    """Semi-Inf-Net run settings.

    Algorithm mode needs ``init_checkpoint`` (a binary model trained on the labeled set); its architecture is
    the model of every step. ``from_published`` skips Algorithm 1 and uses the authors' pseudo-labels
    (``Pseudo-label/GT`` binarised at 128) with ``model`` for the two-step training.
    """

    init_checkpoint: str | None = None
    from_published: bool = False
    model: str | None = None  # filled from init_checkpoint in algorithm mode; default infnet-effl2 when published
    encoder_weights: str | None = "imagenet"  # for the pseudo-label pre-training (a fresh model)
    data: str | None = None  # COVID-SemiSeg root; or the explicit folders below
    train_split: str = "train"  # doctor-labeled slices used as the labeled set
    val_split: str | None = "val"  # selection in the final fine-tuning only
    labeled_images: str | None = None
    labeled_masks: str | None = None
    unlabeled_images: str | None = None
    published_masks: str | None = None  # folder of published pseudo-labels (default: Pseudo-label/GT)
    val_images: str | None = None
    val_masks: str | None = None
    k: int = 400  # unlabeled slices drawn per round (paper: 5)
    max_rounds: int | None = None  # fine-tuning rounds; None = until the pool is empty (paper: 320)
    round_epochs: int = 1
    round_cap: int | None = 100  # training slices drawn per round from labeled + pseudo-labeled (None: all)
    threshold: float = 0.5  # pseudo-label threshold on the probability
    pretrain_epochs: int = 1
    finetune_epochs: int = 30
    # The fine-tuning step's recipe where it differs from the rest (None: the shared value below): by default
    # the labeled-set model's multi-scale, batch-4 training.
    finetune_rates: list[float] | None = field(default_factory=lambda: [0.75, 1.0, 1.25])
    finetune_batch_size: int | None = 4
    finetune_decay_epoch: int | None = None  # None: 3/4 of finetune_epochs (the labeled-set recipe's 30 of 40)
    finetune_size: int | None = None  # None: train_size (the bundled Semi-Inf-Net was fine-tuned at 448)
    batch_size: int = 8
    lr: float = 1e-4
    train_size: int = 352
    rates: list[float] = field(default_factory=lambda: [1.0])
    augment: bool = False
    seed: int = 0
    device: str = "auto"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> SemiConfig:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InfnetError(f"{path}: cannot read Semi-Inf-Net config ({exc.__class__.__name__})") from None
        if "finetune_rates" not in d:  # written before the fine-tuning recipe had its own (now non-shared) defaults
            d.update(finetune_rates=None, finetune_batch_size=None)
            d.setdefault("finetune_decay_epoch", max(1, d.get("finetune_epochs", 20) // 2))
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise InfnetError(f"{path}: unknown Semi-Inf-Net config keys: {', '.join(unknown)}")
        return cls(**d)
