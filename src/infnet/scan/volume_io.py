"""Read CT inputs (NIfTI, MHA/NRRD, DICOM series or file, PNG/JPG slices) and write masks in the input's geometry.

Everything volumetric goes through SimpleITK, which applies the DICOM rescale slope/intercept (so values are HU)
and gives one geometry model (size, spacing, origin, direction in LPS) for every format. Arrays are NumPy views
on the SimpleITK image in (z, y, x) order, so a 1000-slice scan is held once, in its stored type.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infnet.errors import InfnetError
from infnet.io.images import IMAGE_SUFFIXES, atomic_target, atomic_write_bytes, is_image_file
from infnet.scan import dicom_geometry as dg
from infnet.scan import volume_checks as checks

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
CT_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1")  # CT, enhanced CT


def _sitk():
    try:
        import SimpleITK as sitk
    except ImportError:  # pragma: no cover - depends on the environment
        raise InfnetError("reading CT volumes needs SimpleITK: pip install 'infnet[io]'") from None
    return sitk


@contextmanager
def _quiet_itk() -> Iterator[None]:
    """Silence ITK's own stderr warnings (GDCM prints one for every folder without series)."""
    sitk = _sitk()
    old = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(old)


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image in SimpleITK terms: size/spacing/origin in (x, y[, z]) order, direction row-major."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def ndim(self) -> int:
        return len(self.size)

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres (2D images: one pixel times 1 mm)."""
        return float(np.prod(self.spacing[:3])) / 1000.0

    def direction3(self) -> np.ndarray:
        """The 3x3 direction matrix (a 2D image's 2x2 matrix padded with the z axis)."""
        d = np.asarray(self.direction, dtype=float)
        if self.ndim == 2:
            m = np.eye(3)
            m[:2, :2] = d.reshape(2, 2)
            return m
        return d.reshape(3, 3)

    def spacing3(self) -> tuple[float, float, float]:
        sx, sy = self.spacing[0], self.spacing[1]
        return (float(sx), float(sy), float(self.spacing[2]) if self.ndim == 3 else 1.0)

    @classmethod
    def of(cls, image) -> Geometry:
        return cls(
            tuple(int(s) for s in image.GetSize()),
            tuple(float(s) for s in image.GetSpacing()),
            tuple(float(s) for s in image.GetOrigin()),
            tuple(float(s) for s in image.GetDirection()),
        )

    def to_dict(self) -> dict:
        return {"size": list(self.size), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction)}  # fmt: skip


@dataclass
class Volume:
    """A 3D scan: ``array`` is (z, y, x) in the stored type (HU for CT), a view on ``image`` when read by SimpleITK."""

    path: Path
    array: np.ndarray
    geometry: Geometry
    format: str  # nifti | mha | nrrd | dicom-series | dicom-file | array
    intensity: str = "hu"  # hu | 8bit
    modality: str | None = None
    notes: list[str] = field(default_factory=list)
    image: object | None = None  # keeps the SimpleITK image (and so the array view) alive


@dataclass
class SliceSet:
    """2D 8-bit slices (one image, or a folder of them; sizes may differ)."""

    path: Path
    images: list[np.ndarray]
    names: list[str]  # file stems, used for the output file names
    format: str = "image"  # image | image-folder
    pixel_spacing: float | None = None  # mm, when the user gives it
    notes: list[str] = field(default_factory=list)


def _is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_scan(path: str | os.PathLike) -> Volume | SliceSet:
    """Read one input: an image file, a folder of slices, a volume file, a DICOM file or a DICOM series folder."""
    path = Path(path)
    if not path.exists():
        raise InfnetError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_folder(path)
    if is_image_file(path):
        return SliceSet(path, [checks.read_slice(path)], [path.stem])
    if _is_volume_file(path):
        return read_volume_file(path)
    if path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_magic(path):
        return _read_dicom_file(path)
    raise InfnetError(
        f"{path}: unsupported file type (expected {', '.join(VOLUME_SUFFIXES)}, DICOM, or an image "
        f"{', '.join(IMAGE_SUFFIXES)})"
    )


def _volume_from_image(image, path: Path, fmt: str, modality: str | None = None) -> Volume:
    sitk = _sitk()
    dim = image.GetDimension()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InfnetError(f"{path}: has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected grey CT")
    if dim == 4:
        size = "x".join(str(s) for s in image.GetSize())
        raise InfnetError(f"{path}: 4D volume ({size}) is not supported; give one 3D CT volume")
    if dim not in (2, 3):
        raise InfnetError(f"{path}: {dim}D image is not supported; give a 3D CT volume")
    checks.check_spacing(path, image.GetSpacing())
    array = sitk.GetArrayViewFromImage(image)
    fixed, note = checks.replace_non_finite(path, array)
    if note:
        repaired = sitk.GetImageFromArray(fixed)
        repaired.CopyInformation(image)
        image, array = repaired, sitk.GetArrayViewFromImage(repaired)
    if dim == 2:
        array = array[None]
    vol = Volume(path, array, Geometry.of(image), fmt, modality=modality, image=image)
    if note:
        vol.notes.append(note)
    return vol


def read_volume_file(path: str | os.PathLike) -> Volume:
    """Read a NIfTI/MHA/NRRD volume; clear errors for truncated or corrupt files."""
    sitk = _sitk()
    path = Path(path)
    name = path.name.lower()
    fmt = "nifti" if ".nii" in name else "nrrd" if ".nrrd" in name or name.endswith(".nhdr") else "mha"
    if fmt == "nifti":
        checks.check_nifti_header(path)  # before ITK: it reads pixdim 0 as 1 mm and allocates the declared size
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with _quiet_itk():
            reader.ReadImageInformation()
            checks.check_declared_size(path, reader.GetSize(), _bytes_per_voxel(reader))
            image = reader.Execute()
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in reversed(reason) if ln.strip()), "unreadable")
        raise InfnetError(f"{path}: cannot read {fmt} volume (corrupt or truncated?): {detail[:160]}") from None
    if fmt == "nifti" and (bad := checks.check_nifti_complete(path)) is not None:
        if bad.shape != tuple(reversed(image.GetSize())):
            raise InfnetError(f"{path}: NaN voxels in a volume whose header ITK reads differently; fix the file")
        fixed, note = checks.repair_non_finite(path, sitk.GetArrayViewFromImage(image), bad)
        repaired = sitk.GetImageFromArray(fixed)
        repaired.CopyInformation(image)
        vol = _volume_from_image(repaired, path, fmt)
        vol.notes.append(note)
        return vol
    return _volume_from_image(image, path, fmt)


def _bytes_per_voxel(reader) -> int:
    """Bytes of one voxel of the image a reader will produce (components x component size)."""
    sitk = _sitk()
    probe = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID(), reader.GetNumberOfComponents())
    return max(1, int(probe.GetSizeOfPixelComponent()) * int(reader.GetNumberOfComponents()))


def _dicom_tag(reader, key: str, index: int | None = None) -> str | None:
    try:
        if index is None:
            return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else None
        return reader.GetMetaData(index, key).strip() if reader.HasMetaDataKey(index, key) else None
    except RuntimeError:
        return None


def _modality(modality: str | None, sop_class: str | None) -> str | None:
    if modality:
        return modality.upper()
    if sop_class:
        return "CT" if sop_class.strip("\0 ") in CT_SOP_CLASSES else f"SOP class {sop_class}"
    return None


def _read_dicom_file(path: Path) -> Volume:
    sitk = _sitk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOff()
    try:
        with _quiet_itk():
            image = reader.Execute()
    except RuntimeError:
        raise InfnetError(f"{path}: not a readable DICOM image (no pixel data, or unsupported encoding)") from None
    modality = _modality(_dicom_tag(reader, "0008|0060"), _dicom_tag(reader, "0008|0016"))
    vol = _volume_from_image(image, path, "dicom-file", modality)
    if _dicom_tag(reader, dg.POSITION_TAG) is None:
        vol.notes.append(f"{path.name} has no ImagePositionPatient: the mask's origin is set to 0 (position unknown)")
    return vol


def _series_in(folder: Path) -> list[tuple[Path, str, list[str]]]:
    """(folder, series id, files) for every DICOM image series directly in ``folder``."""
    sitk = _sitk()
    out = []
    with _quiet_itk():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        for sid in ids:
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid)
            if files and not _is_non_image_object(files[0]):
                out.append((folder, sid, list(files)))
    return out


# SOP classes that hold no CT slices: segmentations, spatial registrations, structured reports, RT objects.
_NON_IMAGE_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.66", "1.2.840.10008.5.1.4.1.1.88", "1.2.840.10008.5.1.4.1.1.481.3",
                           "1.2.840.10008.5.1.4.1.1.11")  # fmt: skip


def _is_non_image_object(path: str) -> bool:
    """A DICOM SEG, SR, RT structure set or presentation state next to the slices (e.g. infnet's own seg.dcm)."""
    try:
        import pydicom

        sop = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).get("SOPClassUID", ""))
    except Exception:  # noqa: BLE001 - unreadable here means: let the series reader decide
        return False
    return sop.startswith(_NON_IMAGE_SOP_PREFIXES)


def read_dicom_series(folder: str | os.PathLike) -> Volume:
    """Read the largest DICOM series found in ``folder`` (or, failing that, in its subfolders)."""
    sitk = _sitk()
    folder = Path(folder)
    series = _series_in(folder)
    if not series:
        for sub in sorted(p for p in folder.rglob("*") if p.is_dir()):
            series += _series_in(sub)
    if not series:
        raise InfnetError(f"{folder}: DICOM files but no DICOM image series (no readable CT slices)")
    series.sort(key=lambda s: len(s[2]), reverse=True)
    where, sid, files = series[0]
    label = sid if sid else "(empty SeriesInstanceUID)"
    in_series = {Path(f).name for s in series if s[0] == where for f in s[2]}
    stray = [p for p in sorted(where.iterdir()) if p.is_file() and p.name not in in_series and _is_dicom_file(p)]
    notes = dg.stray_files_note(stray, sid, label)
    _check_series_size(where, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        with _quiet_itk():
            image = reader.Execute()
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "unreadable"
        raise InfnetError(f"{where}: cannot read DICOM series {sid or '(no SeriesInstanceUID)'}: {detail}") from None
    if len(series) > 1:
        others = ", ".join(f"{s[1] or '(empty UID)'} ({len(s[2])} files)" for s in series[1:4])
        desc = _dicom_tag(reader, "0008|103e", 0) or ""
        notes.append(
            f"{len(series)} DICOM series found; using the largest: {label} ({len(files)} files"
            f"{', ' + desc if desc else ''}); others: {others}{' ...' if len(series) > 4 else ''}"
        )
    elif not sid:
        notes.append(
            "DICOM series has an empty SeriesInstanceUID; all image files in the folder were read as one series"
        )
    if len(files) > 1 and image.GetDimension() == 3:
        image, note = _even_slices(image, reader, files, where)
        notes += [note] if note else []
    elif _dicom_tag(reader, dg.POSITION_TAG, 0) is None:
        notes.append(f"{Path(files[0]).name} has no ImagePositionPatient: the mask's origin is set to 0 (unknown)")
    modality = _modality(_dicom_tag(reader, "0008|0060", 0), _dicom_tag(reader, "0008|0016", 0))
    vol = _volume_from_image(image, folder, "dicom-series", modality)
    vol.notes += notes
    return vol


def _is_dicom_file(path: Path) -> bool:
    return not path.name.startswith(".") and (path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_magic(path))


def _check_series_size(where: Path, files: list[str]) -> None:
    """Refuse a series whose slices x files would not fit the memory budget, before ITK allocates it."""
    sitk = _sitk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    try:
        with _quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError:
        return  # the series reader gives the error
    size = list(reader.GetSize()) + [1] * (3 - reader.GetDimension())
    checks.check_declared_size(where, (size[0], size[1], size[2] * len(files)), _bytes_per_voxel(reader))


def _even_slices(image, reader, files: list[str], where: Path):
    """The series image with its slices checked from the per-file tags; uneven stacks resampled (with a note)."""
    sitk = _sitk()
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    positions = dg.slice_positions(reader, files, where, direction)
    if dg.uniform_spacing(positions) is not None:
        return image, None
    spacing_xy = tuple(image.GetSpacing()[:2])
    array, spacing, note = dg.resample_uniform(sitk.GetArrayViewFromImage(image), positions, spacing_xy, where)
    out = sitk.GetImageFromArray(array)
    out.SetSpacing((*spacing_xy, spacing))
    out.SetOrigin(image.GetOrigin())
    out.SetDirection(image.GetDirection())
    return out, note


def _read_folder(folder: Path) -> Volume | SliceSet:
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise InfnetError(f"{folder}: folder is empty")
    files = sorted(p for p in entries if p.is_file())
    if any(_is_dicom_file(p) for p in files):
        return read_dicom_series(folder)
    images = [p for p in files if is_image_file(p)]
    if images:
        checks.check_unique_stems(folder, images)
        return SliceSet(folder, [checks.read_slice(p) for p in images], [p.stem for p in images], format="image-folder")
    # A study folder with one subfolder per series.
    if any(p.is_dir() for p in entries) and any(_has_dicom_magic(p) for p in folder.rglob("*") if p.is_file()):
        return read_dicom_series(folder)
    volumes = [p for p in files if _is_volume_file(p)]
    hint = f"; it holds volume files (give one of them, e.g. {volumes[0].name})" if volumes else ""
    raise InfnetError(f"{folder}: no images (PNG/JPG) or DICOM series found in the folder{hint}")


def write_volume_like(array: np.ndarray, geometry: Geometry, path: str | os.PathLike, compress: bool = True) -> None:
    """Write a (z, y, x) array with exactly ``geometry`` (size, spacing, origin, direction), atomically.

    The format follows the suffix of ``path`` (.nii.gz, .nii, .mha, .nrrd).
    """
    sitk = _sitk()
    path = Path(path)
    arr = np.asarray(array)
    if geometry.ndim == 2:
        arr = arr.reshape(arr.shape[-2:])
    expected = tuple(reversed(geometry.size))
    if arr.shape != expected:
        raise ValueError(f"array shape {arr.shape} does not match geometry size {geometry.size} (z,y,x {expected})")
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    with atomic_target(path, suffix=f".tmp{suffix}") as tmp:  # ITK picks the format from the suffix
        sitk.WriteImage(image, str(tmp), compress)


def write_label_png(path: str | os.PathLike, labels: np.ndarray, palette: bool = False) -> None:
    """Write a 2D uint8 mask as PNG atomically; ``palette`` gives the COVID-SemiSeg red/green index PNG."""
    import io

    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8))
    if palette:
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0, 0, 0] * 253)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
