"""Multi-class inference: a binary infection model gives the prior, the multi-class model splits it into classes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from infnet.errors import InfnetError
from infnet.multiclass.data import IN_CHANS, NUM_CLASSES, to_input
from infnet.predictor import (
    NetPredictor,
    SliceSegmenter,
    is_multiclass,
    load_weights,
    tta_logits,
)


class MultiClassSegmenter(NetPredictor):
    """Predictor for GGO and consolidation (the :class:`~infnet.predictor.SlicePredictor` protocol).

    ``predict_proba`` takes uint8 slices (N,H,W) and returns float32 (N,2,H,W): softmax probabilities of
    ground-glass opacity and consolidation at the input's size. The prior is the infection model's prediction
    binarised at ``prior_threshold`` (training uses the ground-truth infection mask, paper section III-E), or its
    probability for a model trained with soft priors (``soft_prior``; default: the checkpoint's metadata).
    ``input_size`` 0 feeds each slice at its own size (the density split). ``temperature`` (default: the
    checkpoint's, else 1) scales the logits before the softmax; the most likely class does not change
    (:mod:`infnet.calibration`). ``tta`` mirrors the slice left-right and averages the logits, ``tta_scales``
    averages over input sizes as in ``SliceSegmenter`` (``from_pretrained`` gives the infection model the same
    settings). ``backend`` as in ``SliceSegmenter``; a model fed at each slice's own size (``input_size`` 0: the
    density split, a few blurs and a logistic regression, milliseconds per slice) always runs in torch, since its
    sizes are arbitrary and a traced graph would freeze its size-dependent padding.
    """

    classes: tuple[str, ...] = ("ggo", "consolidation")

    def __init__(
        self,
        model: nn.Module,
        infection: SliceSegmenter,
        name: str = "multiclass",
        input_size: int = 352,
        device=None,
        batch_size: int = 8,
        prior_threshold: float = 0.5,
        temperature: float | None = None,
        tta: bool = False,
        tta_scales: Iterable[float] | None = None,
        soft_prior: bool | None = None,
        backend: str | None = "auto",
        model_name: str | None = None,
    ):
        cfg = getattr(model, "config", None)
        if getattr(cfg, "in_chans", None) != IN_CHANS or getattr(cfg, "num_classes", None) != NUM_CLASSES:
            raise InfnetError(f"model '{name}' is not a multi-class model (needs 4 input channels and 3 classes)")
        self._setup(model, name=name, input_size=input_size, device=device, batch_size=batch_size,
                    temperature=temperature, tta=tta, tta_scales=tta_scales, backend=backend)  # fmt: skip
        self.infection = infection
        self.model_name = model_name or name  # the multi-class model's own name (``name`` may add the prior's)
        self.prior_threshold = prior_threshold
        if soft_prior is None:
            soft_prior = bool(getattr(model, "checkpoint_meta", {}).get("soft_prior", False))
        self.soft_prior = soft_prior

    def prepare(self) -> MultiClassSegmenter:
        """Build both backends now (infection model and multi-class model)."""
        self.infection.prepare()
        return super().prepare()

    @classmethod
    def from_pretrained(
        cls, model_path: str | Path, infection_model: str | Path | None = None, device=None, **kw
    ) -> MultiClassSegmenter:
        """A multi-class model (bundled name or checkpoint path) plus an infection model for its prior.

        ``infection_model``: bundled name or checkpoint; default: the one named in the bundled model's registry
        entry, else the bundled default binary model.
        """
        model, name, size = load_weights(model_path, task="multiclass")
        infection_model = infection_model or getattr(model, "bundled_entry", {}).get("infection_model")
        if is_multiclass(infection_model):
            raise InfnetError(f"{infection_model}: the infection model must be a binary infection model")
        # the prior gets the same TTA and backend
        tta = dict(tta=kw.get("tta", False), tta_scales=kw.get("tta_scales"), backend=kw.get("backend", "auto"))
        if kw.get("soft_prior") is None:
            kw["soft_prior"] = bool(model.checkpoint_meta.get("soft_prior", False))
        soft = kw["soft_prior"]
        # Soft priors were trained on raw (T = 1) probability maps; a bundled model's sharpening would change them.
        infection = SliceSegmenter.from_pretrained(
            infection_model, device=device, temperature=1.0 if soft else None, **tta
        )
        return cls(model, infection, name=f"{name}+{infection.name}", model_name=name, input_size=size, device=device,
                   **kw)  # fmt: skip

    def priors(self, slices: list[np.ndarray]) -> list[np.ndarray]:
        """Infection priors (uint8, input size) from the infection model: {0,255}, or probability x 255 if soft."""
        probs = self.infection.predict_proba([np.asarray(s) for s in slices])
        if self.soft_prior:
            return [np.clip(p[0] * 255.0 + 0.5, 0, 255).astype(np.uint8) for p in probs]
        return [np.where(p[0] >= self.prior_threshold, 255, 0).astype(np.uint8) for p in probs]

    def _forward(self, slices: list[np.ndarray]) -> list[np.ndarray]:
        for s in slices:
            if s.dtype != np.uint8 or s.ndim != 2:
                raise ValueError(f"expected uint8 (H,W) slices, got {s.dtype} {s.shape}")
        priors = self.priors(slices)
        size = self.input_size or None  # 0: each slice at its own size (density split), one at a time
        pairs = zip(slices, priors, strict=True)
        inputs = [to_input(s, p, size, self.mean, self.std, self.soft_prior) for s, p in pairs]
        batches = [torch.stack(inputs)] if size else [x[None] for x in inputs]
        logits = [lg for b in batches for lg in tta_logits(self.net, b.to(self.device), self.tta_scales, self.tta)]
        out = []
        for s, lg in zip(slices, logits, strict=True):
            lg = F.interpolate(lg[None], size=s.shape, mode="bilinear", align_corners=False)
            out.append(torch.softmax(lg * self.temperature, dim=1)[0, 1:].cpu().numpy())
        return out
