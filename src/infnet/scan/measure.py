"""Lung and infection quantities from label masks: volumes (mL) or areas, per lung, per class, per slice.

Counts are gathered per slice as a (lung side x mask label) table, so a 1000-slice scan never needs a
whole-volume temporary. Lung labels: 1 right, 2 left; mask labels: 0 background, 1 + class index.
"""

from __future__ import annotations

import numpy as np

SIDES = ("right", "left")


def _table(lung: np.ndarray, mask: np.ndarray, n_labels: int) -> np.ndarray:
    """(3, n_labels) counts of (lung side 0/1/2, mask label) pixel pairs in one slice."""
    code = np.asarray(lung, dtype=np.int32) * n_labels + np.asarray(mask, dtype=np.int32)
    return np.bincount(code.ravel(), minlength=3 * n_labels)[: 3 * n_labels].reshape(3, n_labels)


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 3) if whole > 0 else None


def _summary(counts: np.ndarray, classes: tuple[str, ...], scale: float, key: str, has_lung: bool) -> dict:
    """Totals from per-slice (n, 3, K) counts; ``scale`` converts pixel/voxel counts to the unit of ``key``."""
    total = counts.sum(axis=0)  # (3, K)
    lung = {s: float(total[i + 1].sum()) * scale for i, s in enumerate(SIDES)}
    lung["total"] = lung["right"] + lung["left"]

    def part(labels: slice | list[int]) -> dict:
        sides = {s: float(total[i + 1, labels].sum()) * scale for i, s in enumerate(SIDES)}
        vals = {"total": float(total[:, labels].sum()) * scale}
        if has_lung:
            vals.update(sides)
        pct = {s: _pct(vals[s], lung[s]) for s in (*SIDES, "total")} if has_lung else None
        return {key: {k: round(v, 3) for k, v in vals.items()}, "percent_of_lung": pct}

    per_slice_inf = counts[:, :, 1:].sum(axis=(1, 2))
    out = {
        "lung": {key: {k: round(v, 3) for k, v in lung.items()}} if has_lung else None,
        "infection": {
            **part(slice(1, None)),
            "slices_with_infection": int(np.count_nonzero(per_slice_inf)),
            "slices": int(counts.shape[0]),
        },
    }
    if len(classes) > 1:
        out["classes"] = {name: part([c + 1]) for c, name in enumerate(classes)}
    return out


def _per_slice(counts: np.ndarray, classes: tuple[str, ...], scale: float, unit: str) -> list[dict]:
    rows = []
    for i, t in enumerate(counts):
        lung = float(t[1:].sum()) * scale
        inf = float(t[:, 1:].sum()) * scale
        row = {"index": i, f"lung_area_{unit}": round(lung, 2), f"infected_area_{unit}": round(inf, 2),
               "percent_of_lung": _pct(inf, lung)}  # fmt: skip
        if len(classes) > 1:
            for c, name in enumerate(classes):
                row[f"{name}_area_{unit}"] = round(float(t[:, c + 1].sum()) * scale, 2)
        rows.append(row)
    return rows


def measure_volume(lung_view: np.ndarray, mask_view: np.ndarray, classes: tuple[str, ...],
                   spacing: tuple[float, float, float]) -> dict:  # fmt: skip
    """Volumes in mL and per-slice areas in mm^2 from (slice, row, col) views; ``spacing`` in mm per view axis."""
    k = len(classes) + 1
    counts = np.zeros((lung_view.shape[0], 3, k), np.int64)
    for s in range(lung_view.shape[0]):
        lung = lung_view[s]
        if lung.any():  # the pipeline keeps every mask voxel inside the lungs
            counts[s] = _table(lung, mask_view[s], k)
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    out = {"units": {"volume": "mL", "area": "mm2"}, **_summary(counts, classes, voxel_ml, "volume_ml", True)}
    out["per_slice"] = _per_slice(counts, classes, spacing[1] * spacing[2], "mm2")
    return out


def measure_slices(lungs: list[np.ndarray], masks: list[np.ndarray], classes: tuple[str, ...], names: list[str],
                   pixel_spacing: float | None, has_lung: bool) -> dict:  # fmt: skip
    """Areas for 2D slices: pixels, or mm^2 when ``pixel_spacing`` (mm) is known."""
    k = len(classes) + 1
    counts = (
        np.stack([_table(lung, mask, k) for lung, mask in zip(lungs, masks, strict=True)])
        if masks
        else np.zeros((0, 3, k))
    )
    unit = "mm2" if pixel_spacing else "px"
    scale = float(pixel_spacing) ** 2 if pixel_spacing else 1.0
    out = {"units": {"area": unit}, **_summary(counts, classes, scale, f"area_{unit}", has_lung)}
    rows = _per_slice(counts, classes, scale, unit)
    for row, name in zip(rows, names, strict=True):
        row["name"] = name
        if not has_lung:
            row[f"lung_area_{unit}"] = row["percent_of_lung"] = None
    out["per_slice"] = rows
    return out
