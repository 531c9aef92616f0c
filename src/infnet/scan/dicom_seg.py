"""DICOM Segmentation (written with highdicom) for DICOM inputs, for 3D Slicer and OHIF.

The source instances are re-read with pydicom (headers only) and matched to the volume's slices by their image
position along the slice normal, so each SEG frame references exactly the CT instance it was computed on.
Segments: infection (or one per class of a multi-class model), then the right and the left lung.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infnet import __version__
from infnet.errors import InfnetError
from infnet.scan.volume_io import Volume

if TYPE_CHECKING:
    from infnet.scan.result import SegmentationResult

DICOM_FORMATS = ("dicom-series", "dicom-file")
SEG_FILE = "seg.dcm"
# SNOMED CT codes (all in DICOM's CID 7150 / 7151 / 7153 context groups).
_SCT = "SCT"
CATEGORY_ABNORMAL = ("49755003", _SCT, "Morphologically Abnormal Structure")
CATEGORY_ANATOMY = ("91723000", _SCT, "Anatomical Structure")
TYPE_LESION = ("52988006", _SCT, "Lesion")
LUNG = ("39607008", _SCT, "Lung")
RIGHT_LUNG = ("3341006", _SCT, "Right lung")
LEFT_LUNG = ("44029006", _SCT, "Left lung")
CLASS_LABELS = {"infection": "Lung infection", "ggo": "Ground-glass opacity", "consolidation": "Consolidation"}


def _pydicom():
    try:
        import highdicom  # noqa: F401
        import pydicom
    except ImportError:  # pragma: no cover - depends on the environment
        raise InfnetError("DICOM SEG output needs highdicom and pydicom: pip install 'infnet[io]'") from None
    return pydicom


def _candidate_files(volume: Volume) -> list[Path]:
    if volume.format == "dicom-file":
        return [volume.path]
    return sorted(p for p in volume.path.rglob("*") if p.is_file() and not p.name.startswith("."))


def source_instances(volume: Volume) -> list:
    """The DICOM headers (pydicom, no pixels) of the volume's slices, index k = stored slice k."""
    pydicom = _pydicom()
    geom = volume.geometry
    nz = volume.array.shape[0]
    d = geom.direction3()
    normal, origin = d[:, 2], np.array((list(geom.origin) + [0.0])[:3])
    dz = geom.spacing3()[2]
    by_series: dict[str, dict[int, object]] = {}
    for path in _candidate_files(volume):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM (a README, a SEG without pixels...): skip it
            continue
        if "ImagePositionPatient" not in ds or int(getattr(ds, "Rows", 0)) != geom.size[1]:
            continue
        if int(getattr(ds, "Columns", 0)) != geom.size[0]:
            continue
        k = float(np.dot(np.asarray(ds.ImagePositionPatient, float) - origin, normal) / dz) if nz > 1 else 0.0
        if abs(k - round(k)) < 0.1 and 0 <= round(k) < nz:
            by_series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), {})[round(k)] = ds
    best = max(by_series.values(), key=len, default={})
    if len(best) != nz:
        raise InfnetError(f"{volume.path}: found DICOM instances for {len(best)} of {nz} slices; cannot write a "
                          "DICOM SEG that references every slice (use --no-dicom-seg)")  # fmt: skip
    return [best[k] for k in range(nz)]


def seg_problem(datasets: list) -> str | None:
    """Why a valid DICOM SEG cannot reference these instances (None when it can)."""
    if not all(str(getattr(ds, "FrameOfReferenceUID", "") or "") for ds in datasets):
        return "the source instances have no FrameOfReferenceUID, which a DICOM SEG must share with them"
    if not all(str(getattr(ds, "SeriesInstanceUID", "") or "") for ds in datasets):
        return "the source series has an empty SeriesInstanceUID, which a DICOM SEG must reference"
    return None


def dicom_identity(datasets: list) -> dict:
    """Patient and series identifiers of the source (for report.json and ``infnet compare``)."""
    ds = datasets[0]
    return {key: str(getattr(ds, attr, "") or "") for key, attr in (
        ("patient_id", "PatientID"), ("study_instance_uid", "StudyInstanceUID"),
        ("series_instance_uid", "SeriesInstanceUID"), ("study_date", "StudyDate"))}  # fmt: skip


def _code(triple):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=triple[0], scheme_designator=triple[1], meaning=triple[2])


def segment_descriptions(classes: tuple[str, ...], model: str, settings: dict) -> list:
    """One description per infection class, then the right and left lung, all identifying the algorithm."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    params = {"model": model, "threshold": str(settings.get("threshold")), "lung_mask": str(settings.get("lung_mask"))}
    family = codes.cid7162.ArtificialIntelligence
    algo = hd.AlgorithmIdentificationSequence(name="infnet", family=family, version=__version__,
                                              source=f"infnet model {model}", parameters=params)  # fmt: skip
    out = []
    for i, name in enumerate(classes):
        out.append(hd.seg.SegmentDescription(
            segment_number=i + 1, segment_label=CLASS_LABELS.get(name, name)[:64],
            segmented_property_category=_code(CATEGORY_ABNORMAL), segmented_property_type=_code(TYPE_LESION),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algo,
            tracking_id=f"infnet {name}", tracking_uid=hd.UID(), anatomic_regions=[_code(LUNG)]))  # fmt: skip
    for j, (label, code) in enumerate((("Right lung", RIGHT_LUNG), ("Left lung", LEFT_LUNG))):
        out.append(hd.seg.SegmentDescription(
            segment_number=len(classes) + j + 1, segment_label=label,
            segmented_property_category=_code(CATEGORY_ANATOMY), segmented_property_type=_code(code),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algo,
            tracking_id=f"infnet {label.lower()}", tracking_uid=hd.UID()))  # fmt: skip
    return out


def build_seg(result: SegmentationResult, datasets: list):
    """The highdicom Segmentation of ``result`` (binary, overlapping segments) on the source instances."""
    import highdicom as hd

    for ds in datasets:  # type-2 patient/study attributes some exports omit; the SEG copies them (empty is valid)
        for attr in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate",
                     "StudyTime", "ReferringPhysicianName", "AccessionNumber"):  # fmt: skip
            if attr not in ds:
                setattr(ds, attr, "")
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet  # empty means the default repertoire; highdicom rejects the empty value
    n = len(result.classes)
    mask, lungs = np.asarray(result.mask), np.asarray(result.lungs)
    pixels = np.zeros((*mask.shape, n + 2), bool)  # (frames = slices, rows, cols, segments)
    for c in range(n):
        pixels[..., c] = mask == c + 1
    pixels[..., n] = lungs == 1
    pixels[..., n + 1] = lungs == 2
    series_number = int(getattr(datasets[0], "SeriesNumber", 0) or 0) + 1000
    return hd.seg.Segmentation(
        source_images=datasets, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(result.classes, result.model, result.settings),
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="infnet", manufacturer_model_name=result.model[:64], software_versions=f"infnet {__version__}",
        device_serial_number="none", series_description=f"infnet {result.model}"[:64],
        content_description="Lung infection and lungs (research software, not for clinical diagnosis)"[:64],
        content_label="INFNET")  # fmt: skip


def check_dicom_seg(result: SegmentationResult, requested: bool | None) -> bool:
    """Whether to write a DICOM SEG: on by default for DICOM inputs; forcing it on another input is an error."""
    is_dicom = result.is_volume and result.scan.format in DICOM_FORMATS
    if requested and not is_dicom:
        raise InfnetError(f"{result.source}: --dicom-seg needs a DICOM input (this one is {result.scan.format})")
    return is_dicom if requested is None else bool(requested)


def dicom_seg_bytes(result: SegmentationResult, datasets: list) -> bytes:
    """The DICOM SEG file of ``result`` as bytes (the caller writes them atomically)."""
    buf = io.BytesIO()
    log = logging.getLogger("highdicom")
    level = log.level
    log.setLevel(logging.ERROR)  # e.g. "encoding an empty image": a scan without infection is no problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # style remarks on the source's names, not ours to fix
            build_seg(result, datasets).save_as(buf)
    finally:
        log.setLevel(level)
    return buf.getvalue()
