"""What one scan's segmentation produces (:class:`SegmentationResult`) and what it needs from a model.

Kept apart from :mod:`infnet.scan.pipeline` so that the writers (outputs, report, viewer, DICOM SEG) can take a
result without importing the pipeline that makes it. The model side is
:class:`infnet.predictor.SlicePredictor`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infnet.scan.volume_io import SliceSet, Volume

__all__ = ["SegmentationResult"]


@dataclass
class SegmentationResult:
    """Masks (in the input's layout) and measurements of one scan.

    Volumes: ``mask``/``lungs`` are (z, y, x) uint8 arrays, ``probabilities`` (C, z, y, x) uint8 (p * 255).
    2D inputs: lists with one (H, W) array (or (C, H, W)) per input slice.
    Mask labels: 1 infection (binary models) or 1 + class index (multi-class); lungs: 1 right, 2 left.
    """

    source: Path
    scan: Volume | SliceSet
    model: str
    classes: tuple[str, ...]
    mask: np.ndarray | list[np.ndarray]
    lungs: np.ndarray | list[np.ndarray]
    probabilities: np.ndarray | list[np.ndarray] | None
    measurements: dict
    settings: dict
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    lobes: np.ndarray | None = None  # (z, y, x) uint8 lobe codes (infnet.scan.lobes.LOBES), when given

    @property
    def is_volume(self) -> bool:
        return isinstance(self.scan, Volume)

    @property
    def infection_mask(self) -> np.ndarray | list[np.ndarray]:
        """uint8 {0, 1}: any infection class (same layout as ``mask``)."""
        if isinstance(self.mask, list):
            return [(m > 0).astype(np.uint8) for m in self.mask]
        return (self.mask > 0).astype(np.uint8)
