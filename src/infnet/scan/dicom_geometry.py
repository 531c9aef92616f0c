"""Slice geometry of a DICOM series from its per-file tags: refuse what cannot be placed, resample uneven stacks.

ITK stacks a series at one spacing (the mean over the stack) even when slices are missing in the middle, and
falls back to 1 mm and origin 0 without ImagePositionPatient. Here every slice's position is checked instead:
missing position/orientation tags, mixed orientations, slices off the stack axis and duplicate positions are
refused; uneven spacing (missing slices) is resampled linearly onto a uniform grid, with a note saying so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infnet.errors import InfnetError

POSITION_TAG = "0020|0032"  # ImagePositionPatient
ORIENTATION_TAG = "0020|0037"  # ImageOrientationPatient
# Positions are written with a few decimals: spacing differences below this are rounding, not gaps.
TOLERANCE_MM = 0.01
TOLERANCE_REL = 0.01
# Larger gaps (in slice spacings) are refused: interpolating across them would invent anatomy.
MAX_GAP_SPACINGS = 5.0


def _floats(value: str | None, n: int) -> np.ndarray | None:
    if not value:
        return None
    try:
        out = np.array([float(v) for v in value.replace("\0", "").split("\\") if v.strip()], dtype=float)
    except ValueError:
        return None
    return out if out.size == n and np.isfinite(out).all() else None


def _tag(reader, key: str, index: int) -> str | None:
    try:
        return reader.GetMetaData(index, key).strip() if reader.HasMetaDataKey(index, key) else None
    except RuntimeError:
        return None


def slice_positions(reader, files: list[str], folder: Path, direction: np.ndarray) -> np.ndarray:
    """Position (mm) of every slice along the volume's z axis, in the reader's slice order; refuses bad stacks.

    ``reader``: an executed ``ImageSeriesReader`` with its metadata dictionaries; ``direction``: the image's
    3x3 direction matrix (its third column is the stacking axis ITK chose).
    """
    names = [Path(f).name for f in files]
    ipp, iop = [], []
    for i, name in enumerate(names):
        p = _floats(_tag(reader, POSITION_TAG, i), 3)
        if p is None:
            raise InfnetError(
                f"{folder / name}: no valid ImagePositionPatient (0020,0032): slice positions and spacing are unknown; "
                "refusing to guess them"
            )
        o = _floats(_tag(reader, ORIENTATION_TAG, i), 6)
        if o is None:
            raise InfnetError(f"{folder / name}: no valid ImageOrientationPatient (0020,0037): orientation unknown")
        ipp.append(p)
        iop.append(o)
    ipp_a, iop_a = np.array(ipp), np.array(iop)
    differs = np.abs(iop_a - iop_a[0]).max(axis=1) > 1e-4
    if differs.any():
        k = int(np.argmax(differs))
        raise InfnetError(
            f"{folder}: slices have different orientations (ImageOrientationPatient of {names[0]} and {names[k]} "
            "differ); give one stack"
        )
    axis = direction[:, 2]
    rel = ipp_a - ipp_a[0]
    along = rel @ axis
    off = np.linalg.norm(rel - np.outer(along, axis), axis=1)
    if off.max() > 0.1:
        k = int(np.argmax(off))
        raise InfnetError(
            f"{folder / names[k]}: slice is {off[k]:.2f} mm off the stack axis (tilted gantry or shifted table); "
            "such a series cannot be stacked as a grid"
        )
    steps = np.diff(along)
    if steps.size and (steps <= TOLERANCE_MM).any():
        k = int(np.argmax(steps <= TOLERANCE_MM))
        what = "the same position" if abs(steps[k]) <= TOLERANCE_MM else "positions out of order"
        raise InfnetError(
            f"{folder}: {names[k]} and {names[k + 1]} are at {what} ({along[k]:g} and {along[k + 1]:g} mm along the "
            "stack): duplicate slices or two series mixed; remove one"
        )
    return along


def uniform_spacing(positions: np.ndarray) -> float | None:
    """The slice spacing when ``positions`` (ascending) are evenly spaced, else None."""
    steps = np.diff(positions)
    if steps.size == 0:
        return None
    mean = float(steps.mean())
    if np.abs(steps - mean).max() <= TOLERANCE_MM + TOLERANCE_REL * mean:
        return mean
    return None


def resample_uniform(array: np.ndarray, positions: np.ndarray, spacing_xy: tuple[float, float], folder: Path):
    """Linearly resample an unevenly spaced stack (z, y, x) onto an even grid from the first to the last slice.

    Returns (array, slice spacing, note). Grid slices at a source position copy it exactly; the others
    interpolate between their two neighbours with SimpleITK. Gaps over 5 spacings are refused.
    """
    import SimpleITK as sitk

    steps = np.diff(positions)
    base = float(np.median(steps))
    extent = float(positions[-1] - positions[0])
    n_new = max(2, int(round(extent / base)) + 1)
    spacing = extent / (n_new - 1)
    k = int(np.argmax(steps))
    gap = float(steps[k])
    where = f"{gap:g} mm between {positions[k]:g} and {positions[k + 1]:g} mm where the spacing is {base:g} mm"
    if gap > MAX_GAP_SPACINGS * spacing:
        raise InfnetError(
            f"{folder}: slices missing from the series (a gap of {where}); too large to interpolate, refusing"
        )
    targets = positions[0] + spacing * np.arange(n_new)
    out = np.empty((n_new, *array.shape[1:]), dtype=array.dtype)
    tol = TOLERANCE_MM + TOLERANCE_REL * spacing
    interpolated = 0
    left = np.clip(np.searchsorted(positions, targets, side="right") - 1, 0, len(positions) - 2)
    for j, (t, i) in enumerate(zip(targets, left, strict=True)):
        if abs(t - positions[i]) <= tol:
            out[j] = array[i]
        elif abs(t - positions[i + 1]) <= tol:
            out[j] = array[i + 1]
        else:
            out[j] = _between(sitk, array[i : i + 2], float(steps[i]), float(t - positions[i]), spacing_xy, out.dtype)
            interpolated += 1
    note = (
        f"DICOM slice positions are uneven (largest gap {where}): resampled linearly onto a uniform {spacing:g} mm "
        f"grid of {n_new} slices from {len(positions)} files ({interpolated} interpolated); masks and measurements "
        "are on that grid"
    )
    return out, spacing, note


def _between(sitk, pair: np.ndarray, step: float, offset: float, spacing_xy, dtype) -> np.ndarray:
    """The slice ``offset`` mm above the first of two slices ``step`` mm apart, by SimpleITK linear resampling."""
    src = sitk.GetImageFromArray(np.ascontiguousarray(pair, dtype=np.float32))
    src.SetSpacing((*spacing_xy, step))
    ref = sitk.Image(pair.shape[2], pair.shape[1], 1, sitk.sitkFloat32)
    ref.SetSpacing((*spacing_xy, step))
    ref.SetOrigin((0.0, 0.0, offset))
    res = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    values = sitk.GetArrayViewFromImage(res)[0]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def stray_files_note(stray: list[Path], sid: str, label: str) -> list[str]:
    """Notes for DICOM files next to the series that are in no image series; refuses slices of it (no pixels).

    ITK leaves such files out of the series without a word, so a slice without pixel data would simply vanish.
    """
    if not stray:
        return []
    try:
        import pydicom
    except ImportError:  # pragma: no cover - pydicom comes with infnet[io]
        return [f"ignored {len(stray)} DICOM files that are not image slices (e.g. {stray[0].name})"]
    ignored: list[tuple[Path, str]] = []
    for path in stray:
        try:
            ds = pydicom.dcmread(path, defer_size=1024, force=True)
        except Exception:
            ignored.append((path, "unreadable"))
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "").strip("\0 ")
        pixels = any(key in ds for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
        if uid == sid.strip("\0 "):
            why = "has no pixel data" if not pixels else "cannot be read as an image slice"
            raise InfnetError(
                f"{path}: file of DICOM series {label} {why}: the series is incomplete; restore the slice or remove "
                "the file"
            )
        ignored.append((path, "no pixel data" if not pixels else f"series {uid or '(empty UID)'}"))
    first, why = ignored[0]
    return [f"ignored {len(ignored)} DICOM files that are not slices of the series read (e.g. {first.name}: {why})"]
