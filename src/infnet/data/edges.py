"""Edge maps from masks (the paper derives edge supervision from the mask's gradient)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def mask_to_edge(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Boundary of a binary mask as uint8 {0,255}: pixels where the morphological gradient is non-zero.

    ``mask`` (H,W) is binarised at > 127 (uint8) or > 0.5 (float). ``thickness`` dilation/erosion steps.
    An empty or full mask has no edge.
    """
    m = np.asarray(mask)
    binary = m > (127 if m.dtype == np.uint8 else 0.5)
    if not binary.any() or binary.all():
        return np.zeros(binary.shape, dtype=np.uint8)
    grown = ndimage.binary_dilation(binary, iterations=thickness)
    shrunk = ndimage.binary_erosion(binary, iterations=thickness, border_value=1)
    return ((grown & ~shrunk) * 255).astype(np.uint8)
