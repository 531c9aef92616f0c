"""How an axial slice can reach the model: window, orientation, field of view; random and fixed presentations.

The training slices (COVID-SemiSeg) are 8-bit in one lung window, transposed, and cut to the lungs. Real slices
come in any of the 8 flips/rotations of the plane, other lung windows, and with the whole field of view (air,
table, the circular reconstruction field). :func:`random_presentation` draws such a presentation for training;
:data:`VIEWS` are fixed ones for measuring (``benchmarks/robustness.py``). Everything works on HU, so positives
(grey in the training window, mapped back to HU) and real negatives (HU volumes) take the same path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

# The training slices' window, estimated from air / fat / soft-tissue peaks (benchmarks/estimate_window.py).
WINDOW_LEVEL = -430.0
WINDOW_WIDTH = 1400.0
# Lung windows a user's 8-bit slices may come in (issue 15): level -700..-400 HU, width 1000..1600 HU.
LEVEL_RANGE = (-700.0, -400.0)
WIDTH_RANGE = (1000.0, 1600.0)
OUTSIDE_FOV_HU = -2048.0  # what scanners store outside the reconstruction circle (shown black)


def window_to_uint8(hu: np.ndarray, level: float = WINDOW_LEVEL, width: float = WINDOW_WIDTH) -> np.ndarray:
    """Map HU to 8-bit grey with a linear window (the training slices' window by default)."""
    lo = level - width / 2.0
    out = (np.asarray(hu, dtype=np.float32) - lo) * (255.0 / width)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def uint8_to_hu(grey: np.ndarray, level: float = WINDOW_LEVEL, width: float = WINDOW_WIDTH) -> np.ndarray:
    """Approximate HU from 8-bit grey made with the same window (for masking 8-bit volumes)."""
    return (np.asarray(grey, dtype=np.float32) * (width / 255.0) + (level - width / 2.0)).astype(np.float32)


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of the last two axes: rotate by 90 degrees ``k % 4`` times, transpose if k >= 4."""
    if k >= 4:
        a = np.swapaxes(a, -1, -2)
    return np.rot90(a, k % 4, axes=(-2, -1))


def undo_dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`dihedral`."""
    a = np.rot90(a, -(k % 4), axes=(-2, -1))
    return np.swapaxes(a, -1, -2) if k >= 4 else a


def full_fov(
    hu: np.ndarray, masks: Sequence[np.ndarray], rng: np.random.Generator, *, size: int | None = None,
    table: bool | None = None, circle: bool | None = None,
) -> tuple[np.ndarray, list[np.ndarray], tuple[slice, slice]]:  # fmt: skip
    """Paste a lung-cropped slice (training orientation: rows right->left, columns anterior->posterior) into a
    synthetic full field of view: a body ellipse of soft tissue with a fat rim, air around it, optionally the
    table behind the patient and the circular reconstruction field. Returns (HU canvas, masks, crop's box).

    A stand-in for a PACS export of a whole slice; real full-FOV negatives come from real scans.
    """
    h, w = hu.shape
    ar, ac = h / 2 * rng.uniform(1.08, 1.3), w / 2 * rng.uniform(1.1, 1.4)
    side = size or int(2 * max(ar, ac) * rng.uniform(1.15, 1.45))
    side = max(side, int(2 * max(ar, ac)) + 8, h + 4, w + 4)
    cr, cc = side / 2 + rng.uniform(-0.03, 0.03) * side, side / 2 + rng.uniform(-0.05, 0.02) * side
    # The crop's centre sits a little anterior of the body centre: the spine is behind the lungs.
    r0 = int(np.clip(round(cr - h / 2), 0, side - h))
    c0 = int(np.clip(round(cc - ac + (2 * ac - w) * rng.uniform(0.25, 0.45)), 0, side - w))
    box = (slice(r0, r0 + h), slice(c0, c0 + w))
    r, c = np.ogrid[:side, :side]
    rho = np.sqrt(((r - cr) / ar) ** 2 + ((c - cc) / ac) ** 2)
    canvas = rng.normal(-1000.0, 8.0, (side, side)).astype(np.float32)
    # The body: the ellipse, grown where needed so that a chest wall always closes the crop (its lungs touch
    # the crop's edges; a lung open to the air outside the body does not occur in a real slice).
    wall = max(3.0, rng.uniform(0.015, 0.04) * side)
    dr = np.maximum(np.maximum(r0 - r, r - (r0 + h - 1)), 0)
    dc = np.maximum(np.maximum(c0 - c, c - (c0 + w - 1)), 0)
    body = (rho <= 1.0) | (np.hypot(dr, dc) <= wall)
    canvas[body] = rng.normal(40.0, 12.0, int(body.sum()))
    depth = ndi.distance_transform_edt(np.pad(body, 1))[1:-1, 1:-1]
    rim = body & (depth <= rng.uniform(0.4, 0.8) * wall)
    canvas[rim] = rng.normal(-100.0, 12.0, int(rim.sum()))
    if table if table is not None else rng.random() < 0.6:
        t0 = int(min(side - 2, max(cc + ac, c0 + w + wall) + rng.uniform(0.01, 0.04) * side))
        t1 = int(min(side, t0 + max(2, rng.uniform(0.015, 0.04) * side)))
        canvas[int(0.1 * side) : int(0.9 * side), t0:t1] = rng.uniform(-200.0, 300.0)
    if circle if circle is not None else rng.random() < 0.5:
        outside = np.hypot(r - side / 2, c - side / 2) > side / 2 * rng.uniform(0.94, 1.0)
        canvas[outside & ~body] = OUTSIDE_FOV_HU  # the field holds the body (else truncation artefacts)
    canvas[box] = hu
    out_masks = []
    for m in masks:
        big = np.zeros((side, side), m.dtype)
        big[box] = m
        out_masks.append(big)
    return canvas, out_masks, box


def _sub_crop(arrays: list[np.ndarray], rng: np.random.Generator, max_cut: float = 0.08) -> list[np.ndarray]:
    h, w = arrays[0].shape
    t, b = (int(rng.uniform(0, max_cut) * h) for _ in range(2))
    le, ri = (int(rng.uniform(0, max_cut) * w) for _ in range(2))
    return [a[t : h - b, le : w - ri] for a in arrays]


@dataclass(frozen=True)
class PresentationAugment:
    """Probabilities of each random presentation step (the bundled robust models' recipe)."""

    p_window: float = 0.7  # a random lung window instead of the training one
    # Of those, the share whose level and width are each an end of its range: uniform draws seldom reach a
    # corner such as -700/1000 HU, which validation showed to be the hardest window.
    p_window_extremes: float = 0.0
    p_gamma: float = 0.25
    p_fov: float = 0.25  # pasted into a synthetic full field of view (positives / lung-cropped negatives)
    p_crop: float = 0.3  # a tighter crop (up to 8 % off each side)
    dihedral: bool = True

    def __call__(
        self, hu: np.ndarray, masks: Sequence[np.ndarray], rng: np.random.Generator, allow_fov: bool = True
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """HU slice + masks (training orientation) -> 8-bit slice + masks in a random presentation."""
        arrays = [np.asarray(hu, np.float32), *masks]
        if rng.random() < self.p_crop:
            arrays = _sub_crop(arrays, rng)
        if allow_fov and rng.random() < self.p_fov:
            canvas, ms, _ = full_fov(arrays[0], arrays[1:], rng)
            arrays = [canvas, *ms]
        if rng.random() < self.p_window:
            if rng.random() < self.p_window_extremes:
                level, width = LEVEL_RANGE[int(rng.integers(2))], WIDTH_RANGE[int(rng.integers(2))]
            else:
                level, width = rng.uniform(*LEVEL_RANGE), rng.uniform(*WIDTH_RANGE)
            grey = window_to_uint8(arrays[0], level, width)
        else:
            grey = window_to_uint8(arrays[0])
        if rng.random() < self.p_gamma:
            g = rng.uniform(0.8, 1.25)
            grey = np.clip(255.0 * (grey / 255.0) ** g + 0.5, 0, 255).astype(np.uint8)
        arrays = [grey, *arrays[1:]]
        if self.dihedral:
            k = int(rng.integers(8))
            arrays = [np.ascontiguousarray(dihedral(a, k)) for a in arrays]
        return arrays[0], arrays[1:]


@dataclass(frozen=True)
class View:
    """A fixed presentation of a training-window, training-oriented 8-bit slice (for robustness tables)."""

    name: str
    k: int = 0  # dihedral index
    window: tuple[float, float] | None = None  # (level, width) HU
    fov: bool = False  # pasted into a 512 x 512 synthetic full field of view (seeded per slice)

    def apply(self, grey: np.ndarray, masks: Sequence[np.ndarray], seed: int = 0):
        """(8-bit slice, masks) -> the same in this view."""
        hu = uint8_to_hu(grey)
        arrays = [hu, *masks]
        if self.fov:
            rng = np.random.default_rng(seed)
            canvas, ms, _ = full_fov(hu, list(masks), rng, size=max(512, *hu.shape), table=True, circle=True)
            arrays = [canvas, *ms]
        level, width = self.window or (WINDOW_LEVEL, WINDOW_WIDTH)
        arrays[0] = window_to_uint8(arrays[0], level, width)
        return [np.ascontiguousarray(dihedral(a, self.k)) for a in arrays]


# Dihedral names: k=4 (transpose) is the radiological display of a COVID-SemiSeg slice.
_DIHEDRAL_NAMES = {1: "rot90", 2: "rot180", 3: "rot270", 4: "display (transpose)", 5: "transpose+rot90",
                   6: "transpose+rot180", 7: "transpose+rot270"}  # fmt: skip
VIEWS: tuple[View, ...] = (
    View("native"),
    *(View(name, k=k) for k, name in _DIHEDRAL_NAMES.items()),
    View("window -600/1500", window=(-600.0, 1500.0)),
    View("window -700/1000", window=(-700.0, 1000.0)),
    View("window -500/1600", window=(-500.0, 1600.0)),
    View("full FOV 512", fov=True),
    View("full FOV 512, display", k=4, fov=True),
)
# Validation of the robust recipe: the mean Dice over these (the test slices never take part).
VALIDATION_VIEWS: tuple[View, ...] = tuple(
    v for v in VIEWS if v.name in ("native", "rot90", "display (transpose)", "window -600/1500", "full FOV 512")
)
