"""Make CT slices look like the training slices: HU window, orientation, lung-box crop, and the way back.

Training appearance (COVID-SemiSeg Doctor-label JPGs), measured with ``benchmarks/estimate_window.py``:

- Window (constants in :mod:`infnet.data.presentation`): level -430 HU, width 1400 HU (grey 0 at -1130 HU,
  255 at +270 HU). Per-image medians of air in the trachea (grey 23.5), fat (185) and soft tissue (214.5),
  least-squares fit against -1000/-100/+40 HU, gives level -427, width 1400 on the 50 training slices
  (-444/1359 on the 48 test slices). It is a lung window.
- Orientation: the slices are the *transpose* of the radiological display: image rows run from the patient's
  right (top) to left (bottom), columns from anterior (left) to posterior (right), so the spine is on the right
  (checked by eye on heart, descending aorta and spine in the training slices).
- Crop: each slice is cut to the bounding box of both lungs with almost no margin (lungs touch the border).
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
from PIL import Image

# The window belongs to the training data; re-exported here for the scan modules.
from infnet.data.presentation import WINDOW_LEVEL as WINDOW_LEVEL
from infnet.data.presentation import WINDOW_WIDTH as WINDOW_WIDTH
from infnet.data.presentation import uint8_to_hu as uint8_to_hu
from infnet.data.presentation import window_to_uint8 as window_to_uint8
from infnet.errors import InfnetError

CROP_MARGIN_MM = 3.0
MIN_CROP_MM = 80.0


def intensity_summary(array: np.ndarray, n_slices: int = 16) -> dict[str, float]:
    """Min, max and a few percentiles from a few evenly spaced, subsampled slices (cheap on 1000-slice scans)."""
    idx = np.unique(np.linspace(0, array.shape[0] - 1, min(n_slices, array.shape[0])).astype(int))
    sample = np.asarray(array[idx, ::2, ::2], dtype=np.float32)
    p = np.percentile(sample, [1, 50, 99])
    return {"min": float(sample.min()), "max": float(sample.max()), "p1": float(p[0]), "p50": float(p[1]),
            "p99": float(p[2])}  # fmt: skip


def resolve_intensity(array: np.ndarray, modality: str | None, intensity: str, where: str) -> str:
    """Decide how to read the voxel values: 'hu' or '8bit'. ``intensity``: auto | hu | 8bit.

    With ``auto`` a non-CT modality or a value range that is not HU is an error that names the flag to use.
    """
    if intensity in ("hu", "8bit"):
        return intensity
    if intensity != "auto":
        raise InfnetError(f"unknown intensity mode {intensity!r} (use auto, hu or 8bit)")
    if modality and modality != "CT":
        raise InfnetError(
            f"{where}: modality is {modality}, not CT; this model segments CT only "
            "(pass --assume-hu to process it anyway)"
        )
    s = intensity_summary(array)
    if s["min"] >= 0 and 1.5 < s["max"] <= 255:
        raise InfnetError(
            f"{where}: values {s['min']:g}..{s['max']:g} look like 8-bit display grey levels, not HU "
            "(pass --intensity 8bit to use them as windowed grey, or --assume-hu)"
        )
    # A chest CT in HU holds air (< -500) and nothing far beyond dense bone or metal.
    if s["min"] > -500 or s["max"] > 40000:
        raise InfnetError(
            f"{where}: intensity range {s['min']:g}..{s['max']:g} is not Hounsfield units (no air below -500); "
            "if it is CT in HU pass --assume-hu, if it is 8-bit windowed grey pass --intensity 8bit"
        )
    return "hu"


def _axis_assignment(direction: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """For index axes (i, j, k): the physical LPS axis each one follows most closely, and its sign."""
    best, best_score = (0, 1, 2), -1.0
    for perm in permutations(range(3)):  # perm[c] = physical axis of index axis c
        score = sum(abs(direction[perm[c], c]) for c in range(3))
        if score > best_score + 1e-9:
            best, best_score = perm, score
    signs = tuple(1 if direction[best[c], c] >= 0 else -1 for c in range(3))
    return best, signs  # type: ignore[return-value]


def axial_view(array_zyx: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """A view (no copy) of a (z, y, x) volume as (slice, row, col) slices in the training orientation.

    Axis 0 runs along the patient's superior-inferior axis in the stored index order; rows run from the
    patient's right to left and columns from anterior to posterior. Writing into the view writes the input
    layout, which is how masks are pasted back.
    """
    perm, signs = _axis_assignment(np.asarray(direction, dtype=float).reshape(3, 3))
    # Index axis c (i=x, j=y, k=z) is array axis 2 - c.
    array_axis = {perm[c]: 2 - c for c in range(3)}
    sign = {perm[c]: signs[c] for c in range(3)}
    view = np.transpose(array_zyx, (array_axis[2], array_axis[0], array_axis[1]))
    return view[:, :: sign[0], :: sign[1]]


def superior_step(direction: np.ndarray) -> int:
    """+1 when the slice index of :func:`axial_view` grows towards the patient's head, -1 towards the feet."""
    perm, signs = _axis_assignment(np.asarray(direction, dtype=float).reshape(3, 3))
    return signs[perm.index(2)]  # LPS: +z is superior


def view_spacing(spacing_xyz: tuple[float, float, float], direction: np.ndarray) -> tuple[float, float, float]:
    """Spacing (mm) along the axes of :func:`axial_view`: (slice, row, col)."""
    perm, _ = _axis_assignment(np.asarray(direction, dtype=float).reshape(3, 3))
    by_phys = {perm[c]: float(spacing_xyz[c]) for c in range(3)}
    return by_phys[2], by_phys[0], by_phys[1]


def to_display(slice_training: np.ndarray) -> np.ndarray:
    """Training-oriented slice to radiological display (anterior up, patient's right on the image left)."""
    return slice_training.T


def lung_box(
    region: np.ndarray, spacing_rc: tuple[float, float], margin_mm: float = CROP_MARGIN_MM,
    min_mm: float = MIN_CROP_MM,
) -> tuple[slice, slice] | None:  # fmt: skip
    """Bounding box of ``region`` plus a margin, widened to at least ``min_mm`` per side; None when empty."""
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(region.any(axis=0))
    out = []
    for (first, last), n, sp in zip(((rows[0], rows[-1]), (cols[0], cols[-1])), region.shape, spacing_rc, strict=True):
        m = int(round(margin_mm / sp))
        lo, hi = max(0, first - m), min(n, last + 1 + m)
        need = min(n, int(round(min_mm / sp)))
        if hi - lo < need:  # small lung sections (apex, base): a tiny crop blown up to 352 px is meaningless
            centre = (lo + hi) // 2
            lo = max(0, min(centre - need // 2, n - need))
            hi = lo + need
        out.append(slice(lo, hi))
    return out[0], out[1]


def resize_uint8(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2D uint8 image to (height, width)."""
    if img.shape == size:
        return img
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size[1], size[0]), Image.BILINEAR))


def resize_prob(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (C, h, w) float probabilities to (C, height, width), float32."""
    if prob.shape[1:] == size:
        return np.asarray(prob, dtype=np.float32)
    return np.stack([
        np.asarray(Image.fromarray(np.ascontiguousarray(p, dtype=np.float32)).resize(
            (size[1], size[0]), Image.BILINEAR))
        for p in prob
    ])  # fmt: skip


def labels_from_prob(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(C, H, W) probabilities to uint8 labels: 0 background, else 1 + the most likely class.

    Binary (C=1): infection where p >= threshold. Multi-class (C>1, probabilities of the non-background
    classes of a softmax): infection where their sum (1 - p_background) >= threshold, labelled with the most
    likely class, so the infection mask does not depend on how it splits into classes.
    """
    if prob.shape[0] == 1:
        return (prob[0] >= threshold).astype(np.uint8)
    keep = prob.sum(axis=0) >= threshold
    return np.where(keep, prob.argmax(axis=0) + 1, 0).astype(np.uint8)
