"""Plausibility checks on CT inputs before and after reading: declared size, voxel spacing, NaN voxels, 2D slices.

Each check either passes, returns a note saying what was repaired, or raises :class:`InfnetError` naming the file,
so that a hostile or damaged input never turns into a silently wrong measurement (or a 9 GB allocation).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from infnet.errors import InfnetError
from infnet.io.images import read_gray

# Voxel size bounds for CT (mm): detector pixels are >= ~0.1 mm, slabs <= ~10 mm; wider bounds than that catch
# only unit mistakes (m vs mm) and garbage headers.
MIN_SPACING_MM = 0.05
MAX_SPACING_MM = 30.0
# A 1024^3 volume; real chest CT is at most ~512 x 512 x 2000 (0.5 G voxels).
MAX_VOXELS = 1 << 30
# deflate cannot compress better than 1032:1, so a smaller .gz cannot hold the voxels its header declares.
MAX_DEFLATE_RATIO = 1032
# 2D slices: smaller than this cannot show a lung; larger ones or long strips are not CT slices.
MIN_SLICE_PX = 32
MAX_SLICE_PX = 4096
MAX_SLICE_ASPECT = 8.0


def memory_budget_bytes() -> int:
    """A quarter of physical memory: the pipeline holds a few copies of the volume (masks, views, maps)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 4
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def check_declared_size(path: Path, size: tuple[int, ...], bytes_per_voxel: int) -> None:
    """Refuse a volume whose declared size is implausible or does not fit the memory budget, before reading it."""
    voxels = int(np.prod([max(1, int(s)) for s in size], dtype=np.int64))
    shape = "x".join(str(int(s)) for s in size)
    if voxels > MAX_VOXELS:
        raise InfnetError(f"{path}: header declares {shape} voxels ({voxels / 1e9:.1f} G), more than a CT scan has")
    need = voxels * max(1, bytes_per_voxel)
    budget = memory_budget_bytes()
    if need > budget:
        raise InfnetError(
            f"{path}: header declares {shape} voxels ({need / 2**30:.1f} GiB), more than the memory budget "
            f"({budget / 2**30:.1f} GiB, a quarter of this machine's memory)"
        )


def check_spacing(path: Path, spacing: tuple[float, ...], what: str = "voxel size") -> None:
    """Refuse zero, negative, non-finite or implausible voxel sizes (CT: 0.05..30 mm per axis)."""
    for axis, value in zip("xyz", spacing, strict=False):
        if not np.isfinite(value) or not MIN_SPACING_MM <= value <= MAX_SPACING_MM:
            shown = " x ".join(f"{v:g}" for v in spacing)
            raise InfnetError(
                f"{path}: implausible {what} {shown} mm ({axis}: {value:g}; CT is "
                f"{MIN_SPACING_MM:g}..{MAX_SPACING_MM:g} mm); fix the header"
            )


def check_nifti_header(path: Path) -> None:
    """Header checks ITK hides for NIfTI-1: pixdim 0/NaN read as 1 mm, negative as positive; declared size.

    Uncompressed files must hold the declared voxels; a .gz smaller than the declared voxels / 1032 cannot.
    Runs before ITK allocates anything (the header is the first 348 bytes).
    """
    gz = path.name.lower().endswith(".gz")
    try:
        with (gzip.open if gz else open)(path, "rb") as fh:
            header = fh.read(348)
    except (EOFError, OSError, zlib.error):
        raise InfnetError(f"{path}: cannot read nifti volume (corrupt or truncated?): header unreadable") from None
    parsed = _parse_nifti1(header)
    if parsed is None:
        return  # NIfTI-2 or not NIfTI: ITK decides (and the spacing is checked after reading)
    dims, bitpix, pixdim, offset = parsed[:4]
    ndim = max(0, min(dims[0], 7))
    size = tuple(max(1, d) for d in dims[1 : 1 + ndim])
    spatial = pixdim[1 : 1 + min(ndim, 3)]
    if any(not np.isfinite(v) or v <= 0 for v in spatial):
        raise InfnetError(
            f"{path}: header voxel size (pixdim) {' x '.join(f'{v:g}' for v in spatial)} mm is zero, negative or "
            "not a number; fix the header"
        )
    nbytes = int(np.prod(size, dtype=np.int64)) * max(1, bitpix // 8)
    check_declared_size(path, size, max(1, bitpix // 8))
    on_disk = path.stat().st_size
    expected = max(offset, 348) + nbytes
    if not gz and on_disk < expected:
        raise InfnetError(f"{path}: cannot read nifti volume (corrupt or truncated?): {on_disk} of {expected} bytes")
    if gz and on_disk * MAX_DEFLATE_RATIO < nbytes:
        raise InfnetError(
            f"{path}: cannot read nifti volume (corrupt or truncated?): {on_disk} compressed bytes cannot hold the "
            f"{nbytes} bytes of voxels its header declares"
        )


def _parse_nifti1(header: bytes) -> tuple[tuple[int, ...], int, tuple[float, ...], int, str, int] | None:
    """(dim[0..7], bitpix, pixdim[0..7], vox_offset, byte order, datatype) of a NIfTI-1 header, else None."""
    if len(header) < 348:
        return None
    for order in ("<", ">"):
        if struct.unpack(f"{order}i", header[:4])[0] == 348:
            dims = struct.unpack(f"{order}8h", header[40:56])
            datatype, bitpix = struct.unpack(f"{order}2h", header[70:74])
            pixdim = struct.unpack(f"{order}8f", header[76:108])
            offset = struct.unpack(f"{order}f", header[108:112])[0]
            return dims, bitpix, pixdim, int(offset) if np.isfinite(offset) else 0, order, datatype
    return None


NIFTI_FLOATS = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float voxels


def check_nifti_complete(path: Path) -> np.ndarray | None:
    """Raise for a truncated NIfTI-1 file (ITK silently fills missing voxels with zeros).

    For float voxels, also returns the (z, y, x) mask of NaN/Inf voxels (None when there are none): ITK reads them
    as 0, which in HU is soft tissue, so they must be found in the file itself.
    """
    gz = path.name.lower().endswith(".gz")
    try:
        with (gzip.open if gz else open)(path, "rb") as fh:
            header = fh.read(348)
            parsed = _parse_nifti1(header)
            total = len(header)
            if parsed is None:
                while chunk := fh.read(1 << 24):
                    total += len(chunk)
                return None
            dims, bitpix, _, offset, order, datatype = parsed
            total += len(fh.read(max(0, offset - 348)))
            kind = NIFTI_FLOATS.get(datatype)
            bad = []
            while chunk := fh.read(1 << 24):
                total += len(chunk)
                if kind:
                    values = np.frombuffer(chunk[: len(chunk) // int(kind[1]) * int(kind[1])], f"{order}{kind}")
                    bad.append(~np.isfinite(values))
    except (EOFError, OSError, zlib.error):
        raise InfnetError(
            f"{path}: cannot read nifti volume (corrupt or truncated?): compressed data ends early"
        ) from None
    size = [max(1, d) for d in dims[1 : 1 + max(0, min(dims[0], 7))]]
    n = int(np.prod(size, dtype=np.int64))
    expected = max(offset, 348) + n * bitpix // 8
    if total < expected:
        raise InfnetError(f"{path}: cannot read nifti volume (corrupt or truncated?): {total} of {expected} bytes")
    if not kind or not bad or len(size) > 3:
        return None
    mask = np.concatenate(bad)[:n]
    # NIfTI stores x fastest, so the flat voxels reshape straight to (z, y, x).
    return mask.reshape(tuple(reversed(size))) if mask.any() else None


def repair_non_finite(path: Path, array: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, str]:
    """Set the voxels in ``bad`` to the lowest other value (outside the scan); an all-bad volume is refused."""
    if bad.all():
        raise InfnetError(f"{path}: every voxel is NaN or infinite; no image to segment")
    fixed = np.array(array, copy=True)
    low = float(fixed[~bad].min())
    fixed[bad] = low
    n = int(bad.sum())
    note = (
        f"{n} voxels ({n / bad.size:.2%}) were NaN or infinite; set to the volume's lowest value ({low:g}) "
        "and treated as outside the scan"
    )
    return fixed, note


def replace_non_finite(path: Path, array: np.ndarray) -> tuple[np.ndarray, str | None]:
    """NaN/Inf voxels of a float volume set to its lowest finite value (outside the scan, like padding).

    Returns the array (a repaired copy when needed) and a note for the report; an all-NaN volume is refused.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return array, None
    bad = ~np.isfinite(array)
    if not bad.any():
        return array, None
    return repair_non_finite(path, array, bad)


def check_slice_size(path: Path, width: int, height: int) -> None:
    """Refuse 2D images that cannot be CT slices: under 32 px or over 4096 px per side, aspect over 8."""
    small, large = min(width, height), max(width, height)
    if small < MIN_SLICE_PX:
        raise InfnetError(f"{path}: image is {width}x{height} px; a CT slice needs at least {MIN_SLICE_PX} px a side")
    if large > MAX_SLICE_PX:
        raise InfnetError(f"{path}: image is {width}x{height} px; larger than a CT slice ({MAX_SLICE_PX} px a side)")
    if large / small > MAX_SLICE_ASPECT:
        raise InfnetError(f"{path}: image is {width}x{height} px (aspect {large / small:.0f}:1); not a CT slice")


def check_slice_content(path: Path, image: np.ndarray) -> None:
    """Refuse a constant 2D image: it has nothing to segment (and no lung/air contrast to threshold)."""
    if image.size and int(image.min()) == int(image.max()):
        raise InfnetError(f"{path}: every pixel is {int(image.min())}; a constant image has nothing to segment")


def read_slice(path: Path) -> np.ndarray:
    """A 2D slice, after checking its declared size (before decoding) and that it is not constant."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception:  # unreadable: read_gray gives the one-line error
        return read_gray(path)
    check_slice_size(path, width, height)
    image = read_gray(path)
    check_slice_content(path, image)
    return image


def check_unique_stems(folder: Path, images: list[Path]) -> None:
    """Outputs are named by file stem: two slices with one stem (x.jpg, x.png) would write one mask over the other."""
    seen: dict[str, Path] = {}
    for p in images:
        if p.stem in seen:
            raise InfnetError(
                f"{folder}: {seen[p.stem].name} and {p.name} have the same name stem; outputs are named by stem, "
                "rename or remove one"
            )
        seen[p.stem] = p
