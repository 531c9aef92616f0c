"""Multi-class inference: a binary infection model gives the prior, the multi-class model splits it into classes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from infnet.backends import Net, make_net, resolve_backend
from infnet.errors import InfnetError
from infnet.multiclass.data import IN_CHANS, NUM_CLASSES, to_input
from infnet.predictor import (
    SliceSegmenter,
    checked_scales,
    checked_temperature,
    is_multiclass,
    load_weights,
    tta_logits,
)


class MultiClassSegmenter:
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
    ):
        cfg = getattr(model, "config", None)
        if getattr(cfg, "in_chans", None) != IN_CHANS or getattr(cfg, "num_classes", None) != NUM_CLASSES:
            raise InfnetError(f"model '{name}' is not a multi-class model (needs 4 input channels and 3 classes)")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.infection = infection
        self.backend = resolve_backend(backend, self.device) if input_size else "torch"
        self._net: Net | None = None
        self.name = name
        self.input_size = int(input_size)
        self.batch_size = batch_size
        self.prior_threshold = prior_threshold
        self.temperature = checked_temperature(temperature, model)
        self.tta = bool(tta)
        self.tta_scales = checked_scales(tta_scales)
        self.mean, self.std = tuple(model.mean), tuple(model.std)
        if soft_prior is None:
            soft_prior = bool(getattr(model, "checkpoint_meta", {}).get("soft_prior", False))
        self.soft_prior = soft_prior

    @property
    def net(self) -> Net:
        """The multi-class network's logits function for the backend (built once, on first use)."""
        if self._net is None:
            self._net = make_net(self.model, self.backend, self.input_size)
        return self._net

    def prepare(self) -> MultiClassSegmenter:
        """Build both backends now (infection model and multi-class model)."""
        self.infection.prepare()
        _ = self.net
        return self

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
        name = f"{name}+{infection.name}"
        return cls(model, infection, name=name, input_size=size, device=device, **kw)

    def priors(self, slices: list[np.ndarray]) -> list[np.ndarray]:
        """Infection priors (uint8, input size) from the infection model: {0,255}, or probability x 255 if soft."""
        probs = self.infection.predict_proba([np.asarray(s) for s in slices])
        if self.soft_prior:
            return [np.clip(p[0] * 255.0 + 0.5, 0, 255).astype(np.uint8) for p in probs]
        return [np.where(p[0] >= self.prior_threshold, 255, 0).astype(np.uint8) for p in probs]

    @torch.inference_mode()
    def predict_proba(self, slices: np.ndarray | Iterable[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """(N,H,W) uint8 -> float32 (N,2,H,W); a list of (H,W) -> a list of (2,H,W)."""
        if isinstance(slices, np.ndarray):
            if slices.ndim != 3:
                raise ValueError(f"expected (N,H,W) slices, got shape {slices.shape}")
            out = np.empty((len(slices), len(self.classes), *slices.shape[1:]), dtype=np.float32)
            for i in range(0, len(slices), self.batch_size):
                chunk = list(slices[i : i + self.batch_size])
                out[i : i + len(chunk)] = np.stack(self._forward(chunk))
            return out
        items = list(slices)
        result: list[np.ndarray] = []
        for i in range(0, len(items), self.batch_size):
            result += self._forward(items[i : i + self.batch_size])
        return result

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
