"""Lung zones: upper / middle / lower thirds and ventral / dorsal halves of each lung.

Definition (also in the README): for each lung separately, its craniocaudal extent runs from the superior edge
of the most superior axial slice that contains it to the inferior edge of the most inferior one, measured in mm
along the patient's superior axis from the volume's origin and direction (so "upper" is superior whatever the
slice order on disk); each slice belongs to the third that holds its centre. Its anteroposterior extent runs
from the anterior edge of its most anterior voxel column to the posterior edge of its most posterior one over
the whole volume; voxels whose centre lies anterior of the midpoint are ventral, the rest dorsal. Every lung
voxel is in exactly one third and one half, so the thirds (and the halves) add up to the lung.
"""

from __future__ import annotations

import numpy as np

from infnet.scan.preprocess import axial_view
from infnet.scan.volume_io import Geometry

SIDES = ("right", "left")
THIRDS = ("upper", "middle", "lower")
HALVES = ("ventral", "dorsal")
ZONES = THIRDS + HALVES
DEFINITION = (
    "per lung: upper/middle/lower = thirds of its craniocaudal extent (superior edge of its most superior slice "
    "to inferior edge of its most inferior slice, in mm along the patient's superior axis; a slice belongs to "
    "the third holding its centre); ventral/dorsal = halves of its anteroposterior extent over the whole volume "
    "(a voxel is ventral when its centre is anterior of the midpoint)"
)


def slice_positions_mm(shape_zyx: tuple[int, int, int], geometry: Geometry) -> np.ndarray:
    """Patient-superior coordinate (LPS z, mm) of the centre of each :func:`axial_view` slice of a volume."""
    direction = geometry.direction3()
    spacing_xyz = geometry.spacing3()
    origin_xyz = (tuple(geometry.origin) + (0.0, 0.0, 0.0))[:3]
    # axial_view only transposes and flips, so applying it to broadcast index grids (no memory) tells which
    # stored voxel each view position is.
    grids = [np.broadcast_to(np.arange(n).reshape([-1 if a == ax else 1 for a in range(3)]), shape_zyx)
             for ax, n in enumerate(shape_zyx)]  # fmt: skip
    views = [axial_view(g, direction) for g in grids]  # k (z), j (y), i (x) per view position
    r0, c0 = views[0].shape[1] // 2, views[0].shape[2] // 2
    kji = np.stack([v[:, r0, c0] for v in views]).astype(float)  # (3, n): k, j, i of each slice centre
    ijk = kji[::-1] * np.asarray(spacing_xyz, float)[:, None]
    phys = np.asarray(origin_xyz, float)[:, None] + direction @ ijk
    return phys[2]


def _ventral_columns(lung_view: np.ndarray, side: int, col_mm: float) -> tuple[np.ndarray, float]:
    """Per view column (anterior -> posterior): True where the column centre is anterior of the lung's AP midpoint."""
    ncols = lung_view.shape[2]
    present = np.zeros(ncols, bool)
    for s in range(lung_view.shape[0]):
        sl = lung_view[s]
        if sl.any():
            present |= (sl == side).any(axis=0)
    cols = np.flatnonzero(present)
    if cols.size == 0:
        return np.zeros(ncols, bool), 0.0
    mid = (cols[0] + cols[-1] + 1) / 2.0  # in column-edge units
    return np.arange(ncols) + 0.5 < mid, float((cols[-1] + 1 - cols[0]) * col_mm)


def _thirds(z: np.ndarray, present: np.ndarray, thickness: float) -> tuple[np.ndarray, list[float]]:
    """Third index (0 upper, 1 middle, 2 lower, -1 no lung) per slice, and the extent [inferior, superior] in mm."""
    out = np.full(z.shape, -1, int)
    if not present.any():
        return out, []
    top, bottom = z[present].max() + thickness / 2.0, z[present].min() - thickness / 2.0
    frac = (top - z) / (top - bottom)  # 0 at the superior edge, 1 at the inferior edge
    out[present] = np.clip((frac[present] * 3).astype(int), 0, 2)
    return out, [round(float(bottom), 2), round(float(top), 2)]


def measure_zones(lung_view: np.ndarray, mask_view: np.ndarray, classes: tuple[str, ...],
                  spacing: tuple[float, float, float], positions_mm: np.ndarray) -> dict:  # fmt: skip
    """Per-zone, per-lung volumes (mL) and % involved from (slice, row, col) views (see the module docstring).

    ``spacing``: mm per view axis; ``positions_mm``: superior coordinate of each slice (:func:`slice_positions_mm`).
    """
    k = len(classes) + 1
    n = lung_view.shape[0]
    ventral = {}
    extent_ap = {}
    for side, name in ((1, "right"), (2, "left")):
        ventral[side], extent_ap[name] = _ventral_columns(lung_view, side, spacing[2])
    # counts[s, side(0..2), dorsal(0/1), label]: one pass, no whole-volume temporaries
    counts = np.zeros((n, 3, 2, k), np.int64)
    dorsal_of = np.stack([np.zeros_like(ventral[1]), ~ventral[1], ~ventral[2]]).astype(np.int32)  # by side
    present = np.zeros((n, 3), bool)
    for s in range(n):
        lung = np.asarray(lung_view[s], dtype=np.int32)
        if not lung.any():
            continue
        dorsal = dorsal_of[lung, np.arange(lung.shape[1])[None, :]]  # per voxel, by its side and column
        code = (lung * 2 + dorsal) * k + np.asarray(mask_view[s], dtype=np.int32)
        counts[s] = np.bincount(code.ravel(), minlength=6 * k)[: 6 * k].reshape(3, 2, k)
        present[s] = counts[s].sum(axis=(1, 2)) > 0
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    out: dict = {"definition": DEFINITION, "extent_mm": {}}
    tables: dict[str, dict[str, np.ndarray]] = {z: {} for z in ZONES}
    for side, name in ((1, "right"), (2, "left")):
        third, cc = _thirds(positions_mm, present[:, side], spacing[0])
        out["extent_mm"][name] = {"craniocaudal": cc, "anteroposterior": round(extent_ap[name], 2)}
        for t, zone in enumerate(THIRDS):
            tables[zone][name] = counts[third == t, side].sum(axis=(0, 1))
        for h, zone in enumerate(HALVES):
            tables[zone][name] = counts[:, side, h].sum(axis=0)
    for zone in ZONES:
        tables[zone]["both"] = tables[zone]["right"] + tables[zone]["left"]
        out[zone] = {name: _entry(t, classes, voxel_ml) for name, t in tables[zone].items()}
    return out


def _entry(label_counts: np.ndarray, classes: tuple[str, ...], voxel_ml: float) -> dict:
    lung = float(label_counts.sum()) * voxel_ml
    inf = float(label_counts[1:].sum()) * voxel_ml
    entry = {"lung_volume_ml": round(lung, 3), "infected_volume_ml": round(inf, 3),
             "percent_involved": round(100.0 * inf / lung, 3) if lung > 0 else None}  # fmt: skip
    if len(classes) > 1:
        for c, name in enumerate(classes):
            entry[f"{name}_volume_ml"] = round(float(label_counts[c + 1]) * voxel_ml, 3)
    return entry
