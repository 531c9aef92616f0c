"""Lobe label maps (TotalSegmentator, lungmask LTRCLobes, ChestImagingPlatform, custom) and the CT severity score.

A lobe map is read with SimpleITK, brought onto the scan's voxel grid (nearest neighbour when its geometry
differs but it covers the same region) and recoded to 1..5 = RUL, RML, RLL, LUL, LLL. The score is the 25-point
CT severity score of Pan et al. (Radiology 2020): each lobe 0-5 by % involved, summed.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infnet.errors import InfnetError
from infnet.scan.volume_io import Geometry, Volume

LOBES = ("RUL", "RML", "RLL", "LUL", "LLL")
LOBE_NAMES = {"RUL": "right upper lobe", "RML": "right middle lobe", "RLL": "right lower lobe",
              "LUL": "left upper lobe", "LLL": "left lower lobe"}  # fmt: skip
SCHEMES: dict[str, dict[str, int]] = {
    "totalsegmentator": {"LUL": 10, "LLL": 11, "RUL": 12, "RML": 13, "RLL": 14},  # `total` task, v2
    "lungmask": {"LUL": 1, "LLL": 2, "RUL": 3, "RML": 4, "RLL": 5},  # LTRCLobes
    "cip": {"RUL": 4, "RML": 5, "RLL": 6, "LUL": 7, "LLL": 8},  # ChestImagingPlatform regions, value % 256
}
TOTALSEG_FILES = {"RUL": "lung_upper_lobe_right", "RML": "lung_middle_lobe_right", "RLL": "lung_lower_lobe_right",
                  "LUL": "lung_upper_lobe_left", "LLL": "lung_lower_lobe_left"}  # fmt: skip
CIP_LUNG_CODES = (1, 2, 3)  # whole/right/left lung: allowed in a CIP lobe map, not lobes
SCORE_DEFINITION = ("CT severity score (Pan et al., Radiology 2020): per lobe 0 none, 1 <5 %, 2 5-25 %, "
                    "3 >25-<50 %, 4 50-75 %, 5 >75 % involved; total 0-25")  # fmt: skip
MIN_OVERLAP = 0.5  # of the smaller bounding box: below it the lobe map is of another region (or patient)
LUNGMASK_LOBE_WEIGHTS = "unet_ltrclobes*.pth"
MAX_OUTSIDE_PERCENT = 20.0  # of the lung mask outside every lobe: above it, a note says the two disagree


@dataclass
class LobeMap:
    """(z, y, x) uint8 lobe codes on the scan's grid: 0 none, 1 + index in :data:`LOBES`."""

    array: np.ndarray
    source: str
    scheme: str
    notes: list[str] = field(default_factory=list)


def severity_score(percent: float | None) -> int | None:
    """0-5 lobe score from the % of the lobe involved (None for a lobe that is absent)."""
    if percent is None:
        return None
    if percent <= 0:
        return 0
    if percent < 5:
        return 1
    if percent <= 25:
        return 2
    if percent < 50:
        return 3
    return 4 if percent <= 75 else 5


def parse_lobe_labels(text: str | None) -> tuple[str | None, dict[str, int] | None]:
    """``--lobe-labels``: a scheme name or ``RUL=1,RML=2,...``; (None, None) means detect from the values."""
    if not text:
        return None, None
    if text.lower() in SCHEMES:
        return text.lower(), SCHEMES[text.lower()]
    mapping: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in LOBES or not value.strip().lstrip("-").isdigit():
            raise InfnetError(f"--lobe-labels {text!r}: expected a scheme ({', '.join(SCHEMES)}) or "
                              f"NAME=VALUE pairs with names {', '.join(LOBES)}, e.g. RUL=1,RML=2,RLL=3,LUL=4,LLL=5")
        mapping[name] = int(value)
    if len(set(mapping.values())) != len(mapping):
        raise InfnetError(f"--lobe-labels {text!r}: two lobes share a value")
    return "custom", mapping


def _detect(values: np.ndarray, where: str) -> str:
    """The scheme whose codes explain the map's non-zero values."""
    vals = {int(v) for v in values if v != 0}
    mod = {v % 256 for v in vals} - {0}  # CIP: the high byte is a type (airway, vessel), 512 = type on no region
    if vals and vals <= {1, 2, 3, 4, 5}:
        return "lungmask"
    if vals & {10, 11, 12, 13, 14} and max(vals) < 256 and not mod <= set(range(1, 9)):
        return "totalsegmentator"
    if mod & {4, 5, 6, 7, 8} and mod <= set(range(1, 9)):
        return "cip"
    shown = ", ".join(str(v) for v in sorted(vals)[:12]) or "none"
    raise InfnetError(f"{where}: cannot tell the lobe labels from its values ({shown}); pass --lobe-labels "
                      f"{'|'.join(SCHEMES)} or a mapping like RUL=1,RML=2,RLL=3,LUL=4,LLL=5")  # fmt: skip


def recode(values: np.ndarray, scheme: str, mapping: dict[str, int], where: str) -> np.ndarray:
    """Map a label array to 0..5 lobe codes; unknown non-zero labels are an error (except other organs)."""
    arr = np.asarray(values)
    if scheme == "cip":
        arr = arr % 256
    present = np.unique(arr)
    if present.size and present[0] < 0:
        raise InfnetError(f"{where}: lobe map has negative values; expected a label map")
    lut_size = int(present[-1]) + 1 if present.size else 1
    known = set(mapping.values())
    # TotalSegmentator maps hold every organ; CIP maps may also label whole/right/left lung.
    ignorable = {"cip": set(CIP_LUNG_CODES), "totalsegmentator": set(range(1, 256))}.get(scheme, set())
    unknown = [int(v) for v in present if v != 0 and v not in known and v not in ignorable]
    if unknown:
        raise InfnetError(f"{where}: unknown lobe label(s) {', '.join(map(str, unknown[:10]))} for the {scheme} "
                          f"labels {mapping}; pass --lobe-labels with a mapping for this map")  # fmt: skip
    if not known & set(int(v) for v in present):
        raise InfnetError(f"{where}: no lobe labels ({scheme}: {mapping}) in the map")
    lut = np.zeros(max(lut_size, max(known) + 1), np.uint8)
    for i, name in enumerate(LOBES):
        if name in mapping:
            lut[mapping[name]] = i + 1
    return lut[arr]


def _corners(geom: Geometry) -> np.ndarray:
    """Physical bounding box (2, 3) of a grid's voxel edges."""
    size = np.array((list(geom.size) + [1])[:3], float)
    sp = np.array(geom.spacing3())
    d = geom.direction3()
    origin = np.array((list(geom.origin) + [0.0])[:3])
    idx = np.array([[a, b, c] for a in (-0.5, size[0] - 0.5) for b in (-0.5, size[1] - 0.5)
                    for c in (-0.5, size[2] - 0.5)])  # fmt: skip
    pts = origin + (idx * sp) @ d.T
    return np.stack([pts.min(axis=0), pts.max(axis=0)])


def _same_grid(a: Geometry, b: Geometry) -> bool:
    same = tuple(a.size) == tuple(b.size) and np.allclose(a.spacing, b.spacing, atol=1e-4)
    return same and np.allclose(a.origin, b.origin, atol=1e-3) and np.allclose(a.direction, b.direction, atol=1e-4)


def on_scan_grid(image, scan: Geometry, where: str) -> np.ndarray:
    """A SimpleITK label image as a (z, y, x) array on the scan's grid (nearest-neighbour resampling if needed)."""
    import SimpleITK as sitk

    geom = Geometry.of(image)
    if _same_grid(geom, scan):
        return sitk.GetArrayFromImage(image).reshape(tuple(reversed(scan.size)))
    a, b = _corners(geom), _corners(scan)
    inter = np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0, None).prod()
    smaller = min((a[1] - a[0]).prod(), (b[1] - b[0]).prod())
    overlap = inter / smaller if smaller > 0 else 0.0
    if overlap < MIN_OVERLAP:
        raise InfnetError(f"{where}: the lobe map covers another region than the scan ({100 * overlap:.0f} % of the "
                          "smaller extent overlaps); give a lobe map computed on this scan")  # fmt: skip
    if image.GetDimension() != 3 or scan.ndim != 3:
        raise InfnetError(f"{where}: lobe map and scan must both be 3D to resample the lobe map onto the scan")
    f = sitk.ResampleImageFilter()
    f.SetSize([int(s) for s in scan.size])
    f.SetOutputSpacing(scan.spacing)
    f.SetOutputOrigin(scan.origin)
    f.SetOutputDirection(scan.direction)
    f.SetInterpolator(sitk.sitkNearestNeighbor)
    f.SetDefaultPixelValue(0)
    return sitk.GetArrayFromImage(f.Execute(image))


def _read_label_image(path: Path):
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InfnetError(f"{path}: cannot read the lobe map (expected NIfTI, NRRD or MHA)") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InfnetError(f"{path}: lobe map has several components per voxel; expected one label per voxel")
    if "float" in image.GetPixelIDTypeAsString():
        arr = sitk.GetArrayViewFromImage(image)
        if not np.array_equal(arr, np.round(arr)):
            raise InfnetError(f"{path}: lobe map has non-integer values; expected a label map")
        image = sitk.Cast(image, sitk.sitkInt32)
    return image


def _from_folder(folder: Path, scan: Geometry) -> LobeMap:
    """TotalSegmentator's per-structure mask files (``lung_upper_lobe_right.nii.gz`` ...) in ``folder``."""
    found = {}
    for lobe, stem in TOTALSEG_FILES.items():
        for ext in (".nii.gz", ".nii", ".nrrd", ".mha"):
            if (folder / f"{stem}{ext}").is_file():
                found[lobe] = folder / f"{stem}{ext}"
                break
    if not found:
        raise InfnetError(f"{folder}: no TotalSegmentator lobe mask files ({', '.join(TOTALSEG_FILES.values())})")
    out = np.zeros(tuple(reversed(scan.size)), np.uint8)
    notes = [f"lobe mask file missing: {TOTALSEG_FILES[k]} ({k})" for k in LOBES if k not in found]
    for lobe, path in found.items():
        arr = on_scan_grid(_read_label_image(path), scan, str(path))
        out[(arr > 0) & (out == 0)] = LOBES.index(lobe) + 1
    return LobeMap(out, str(folder), "totalsegmentator-files", notes)


def load_lobes(spec: str | os.PathLike | np.ndarray, volume: Volume, labels: str | None = None) -> LobeMap:
    """The lobe map for ``volume`` from a file, a TotalSegmentator folder, ``'lungmask'`` or a (z, y, x) array."""
    scheme, mapping = parse_lobe_labels(labels)
    scan = volume.geometry
    if isinstance(spec, np.ndarray):
        if spec.shape != volume.array.shape:
            raise InfnetError(f"lobe array shape {spec.shape} differs from the scan's {volume.array.shape}")
        scheme = scheme or _detect(np.unique(spec), "lobe array")
        return LobeMap(recode(spec, scheme, mapping or SCHEMES[scheme], "lobe array"), "array", scheme)
    if str(spec) == "lungmask":
        return lungmask_lobes(volume)
    path = Path(spec)
    if not path.exists():
        raise InfnetError(f"{path}: no such lobe map file or folder")
    if path.is_dir():
        return _from_folder(path, scan)
    arr = on_scan_grid(_read_label_image(path), scan, str(path))
    if scheme is None:
        scheme = _detect(np.unique(arr), str(path))
    lobes = recode(arr, scheme, mapping or SCHEMES[scheme], str(path))
    return LobeMap(lobes, str(path), scheme)


def lungmask_available() -> bool:
    """True when the ``lungmask`` package is importable and its LTRCLobes weights are already downloaded."""
    if importlib.util.find_spec("lungmask") is None:
        return False
    try:
        import torch

        return any((Path(torch.hub.get_dir()) / "checkpoints").glob(LUNGMASK_LOBE_WEIGHTS))
    except Exception:  # noqa: BLE001 - any failure means "not usable offline"
        return False


def lungmask_lobes(volume: Volume) -> LobeMap:
    """Lobes from the ``lungmask`` package's LTRCLobes model (never downloads: its weights must be present)."""
    if not lungmask_available():
        raise InfnetError("--lobes lungmask needs the 'lungmask' package and its LTRCLobes weights already "
                          "downloaded (torch hub checkpoints); give a lobe map file instead")  # fmt: skip
    import SimpleITK as sitk
    from lungmask import LMInferer  # type: ignore[import-not-found]

    image = volume.image
    if image is None:
        g = volume.geometry
        image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
        image.SetSpacing(g.spacing)
        image.SetOrigin(g.origin)
        image.SetDirection(g.direction)
    labels = np.asarray(LMInferer(modelname="LTRCLobes", force_cpu=True, tqdm_disable=True).apply(image))
    lobes = recode(labels.reshape(volume.array.shape), "lungmask", SCHEMES["lungmask"], "lungmask output")
    return LobeMap(lobes, "lungmask LTRCLobes", "lungmask")


def measure_lobes(lobes: LobeMap, mask: np.ndarray, lungs: np.ndarray, classes: tuple[str, ...],
                  voxel_ml: float) -> dict:  # fmt: skip
    """Per-lobe volume, infected volume, % involved, 0-5 score and the 0-25 total (arrays in one layout)."""
    k = len(classes) + 1
    counts = np.zeros((len(LOBES) + 1, k), np.int64)
    lung_outside = 0
    for s in range(lobes.array.shape[0]):  # slice by slice: no whole-volume temporaries
        lo = np.asarray(lobes.array[s], np.int64)
        counts += np.bincount((lo * k + mask[s]).ravel(), minlength=(len(LOBES) + 1) * k).reshape(-1, k)
        lung_outside += int(np.count_nonzero((lo == 0) & (np.asarray(lungs[s]) > 0)))
    out: dict = {"source": lobes.source, "scheme": lobes.scheme, "score_definition": SCORE_DEFINITION, "lobes": {}}
    total, missing = 0, []
    for i, name in enumerate(LOBES):
        c = counts[i + 1]
        vol, inf = float(c.sum()) * voxel_ml, float(c[1:].sum()) * voxel_ml
        pct = round(100.0 * inf / vol, 3) if vol > 0 else None
        entry = {"name": LOBE_NAMES[name], "lobe_volume_ml": round(vol, 3), "infected_volume_ml": round(inf, 3),
                 "percent_involved": pct, "score": severity_score(pct)}  # fmt: skip
        if len(classes) > 1:
            for j, cname in enumerate(classes):
                entry[f"{cname}_volume_ml"] = round(float(c[j + 1]) * voxel_ml, 3)
        out["lobes"][name] = entry
        if entry["score"] is None:
            missing.append(name)
        else:
            total += entry["score"]
    out["severity_score"] = total
    out["complete"] = not missing
    out["infected_outside_lobes_ml"] = round(float(counts[0, 1:].sum()) * voxel_ml, 3)
    lung_total = int(np.count_nonzero(lungs))
    out["lung_outside_lobes_percent"] = round(100.0 * lung_outside / lung_total, 2) if lung_total else None
    notes = list(lobes.notes)
    outside = out["lung_outside_lobes_percent"]
    if outside is not None and outside > MAX_OUTSIDE_PERCENT:  # lung mask and lobe map disagree: flag it
        notes.append(f"{outside:.0f} % of the lung mask lies outside the lobe map ({lobes.source}): the lung mask "
                     "or the lobe map is wrong here; check both in the viewer before using the lobe numbers")
    if missing:
        notes.append(f"lobe(s) {', '.join(missing)} absent from the lobe map: the total covers the other lobes only")
    out["notes"] = notes
    return out
