"""Segment one scan: read, lung mask, HU window and orientation, lung-box crops in batches, paste back, measure.

The model is any *slice predictor* (:class:`SlicePredictor`): 8-bit slices in the training appearance in,
per-class probabilities out. Volumes are processed a batch of slices at a time, so the only whole-volume
arrays are the input (in its stored type) and the uint8 masks.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from infnet.errors import InfnetError
from infnet.predictor import SlicePredictor
from infnet.scan import cautions
from infnet.scan import lungmask as lm
from infnet.scan import slices2d as s2d
from infnet.scan.lobes import load_lobes, measure_lobes
from infnet.scan.measure import measure_slices, measure_volume
from infnet.scan.preprocess import (
    CROP_MARGIN_MM,
    WINDOW_LEVEL,
    WINDOW_WIDTH,
    axial_view,
    labels_from_prob,
    lung_box,
    resize_prob,
    resize_uint8,
    resolve_intensity,
    superior_step,
    uint8_to_hu,
    view_spacing,
    window_to_uint8,
)
from infnet.scan.result import SegmentationResult
from infnet.scan.volume_io import Geometry, SliceSet, Volume, read_scan
from infnet.scan.zones import measure_zones, slice_positions_mm

MIN_LUNG_AREA_MM2 = 100.0  # slices with less lung than 1 cm^2 are not sent to the model
LUNG_METHODS = ("auto", "classical", "lungmask", "intensity", "none")
__all__ = ["SegmentationResult", "SlicePredictor", "segment_array", "segment_file", "segment_slices",
           "segment_volume"]  # fmt: skip


def segment_file(predictor: SlicePredictor, path: str | Path, **options) -> SegmentationResult:
    """Read ``path`` (image, folder of slices, NIfTI/MHA/NRRD, DICOM file or series folder) and segment it.

    Options: see :func:`segment_volume` and :func:`segment_slices` (``pixel_spacing`` and
    ``slice_orientation`` apply to 2D inputs only).
    """
    t0 = time.perf_counter()
    scan = read_scan(path)
    return segment_scan(predictor, scan, read_s=time.perf_counter() - t0, **options)


def segment_scan(predictor: SlicePredictor, scan: Volume | SliceSet, *, read_s: float = 0.0, **options):
    """Segment an input :func:`read_scan` returned (options as :func:`segment_file`; ``read_s``: its read time)."""
    if isinstance(scan, SliceSet):
        if options.get("lobes") is not None:
            raise InfnetError(f"{scan.path}: --lobes needs a CT volume; this input is 2D slices")
        options = {k: v for k, v in options.items() if k not in ("lobes", "lobe_labels")}
        if options.get("pixel_spacing"):
            scan.pixel_spacing = float(options["pixel_spacing"])
        opts = {k: v for k, v in options.items() if k not in ("intensity", "pixel_spacing")}
        result = segment_slices(predictor, scan, **opts)
    else:
        opts = {k: v for k, v in options.items() if k not in ("slice_orientation", "pixel_spacing")}
        result = segment_volume(predictor, scan, **opts)
    result.timings = {"read": read_s, **result.timings}
    return result


def segment_array(
    predictor: SlicePredictor, array: np.ndarray, *, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    direction: tuple[float, ...] | None = None, origin: tuple[float, float, float] = (0.0, 0.0, 0.0), **options,
) -> SegmentationResult:  # fmt: skip
    """Segment a (z, y, x) CT array (HU unless ``intensity='8bit'``); ``spacing``/``origin`` in (x, y, z) mm.

    ``direction`` (row-major 3x3, LPS) defaults to identity: rows anterior->posterior, columns right->left,
    which is how SimpleITK presents DICOM and most NIfTI volumes.
    """
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise InfnetError(f"expected a (z, y, x) volume, got shape {arr.shape}")
    geom = Geometry(tuple(int(s) for s in arr.shape[::-1]), tuple(float(s) for s in spacing),
                    tuple(float(o) for o in origin), tuple(direction or np.eye(3).ravel().tolist()))  # fmt: skip
    return segment_volume(predictor, Volume(Path("<array>"), arr, geom, "array"), **options)


def _check_predictor(predictor: SlicePredictor) -> tuple[str, ...]:
    classes = tuple(getattr(predictor, "classes", ()) or ())
    if not classes or not callable(getattr(predictor, "predict_proba", None)):
        raise TypeError("predictor must have .classes and .predict_proba(slices)")
    return classes


def predictor_settings(predictor) -> dict:
    """The predictor's output temperature and test-time augmentation, for the report (defaults if it has none)."""
    scales = getattr(predictor, "tta_scales", (1.0,))
    views = str(getattr(predictor, "tta", "none"))
    return {
        "temperature": float(getattr(predictor, "temperature", 1.0)),
        "tta": {"views": "none" if views == "auto" else views, "scales": [float(x) for x in scales]},
    }


@contextlib.contextmanager
def _slice_tta(predictor):
    """TTA 'auto' means all 8 flips/rotations on 2D slices, whose orientation the image does not prove: the
    answer is then the same in every orientation (and on the 5 validation slices it was 0.010-0.024 Dice@0.5
    better than one view, docs/robustness.md; the 4 mirror images that keep the lungs' axis were worse for the
    models trained in one orientation, benchmarks/runs/robust/lungs-axis). Volumes are turned by their direction
    matrix: one view."""
    parts = [p for p in (predictor, getattr(predictor, "infection", None)) if getattr(p, "tta", None) == "auto"]
    for p in parts:
        p.tta = "dihedral"
    try:
        yield
    finally:
        for p in parts:
            p.tta = "auto"


def _predict(predictor: SlicePredictor, crops: list[np.ndarray], input_size: int | None, n_classes: int):
    """Probabilities (C, h, w) per crop at the crop's own size; crops are resized to a common size to batch."""
    if not crops:
        return []
    if input_size:
        batch = np.stack([resize_uint8(c, (input_size, input_size)) for c in crops])
        probs = np.asarray(predictor.predict_proba(batch), dtype=np.float32)
        _check_output(probs, batch.shape, n_classes)
        return [resize_prob(p, c.shape) for p, c in zip(probs, crops, strict=True)]
    out = []
    for c in crops:  # no common size: one call per crop
        p = np.asarray(predictor.predict_proba(c[None]), dtype=np.float32)
        _check_output(p, (1, *c.shape), n_classes)
        out.append(p[0])
    return out


def _widen_boxes(predictor, prepared, input_size, n_classes, threshold, pixel_mm, margin_mm) -> list:
    """Full-FOV slices: a first pass over the body's box finds infection the intensity lung box may miss."""
    full = [i for i, p in enumerate(prepared) if p.body is not None]
    firsts = _predict(predictor, [prepared[i].image[prepared[i].body] for i in full], input_size, n_classes)
    out = list(prepared)
    for i, prob in zip(full, firsts, strict=True):
        p = prepared[i]
        infection = np.zeros(p.image.shape, bool)
        infection[p.body] = labels_from_prob(prob, threshold) > 0
        out[i] = s2d.widen_box(p, infection, pixel_mm, margin_mm)
    return out


def _input_size(predictor: SlicePredictor, requested: int | None) -> int:
    """The size crops are batched at: ``requested`` (0: each crop at its own size, one call each), else the model's
    own input size (a 448 model is not fed 352 crops; 352 for the density split, fed at each slice's own size, so
    that its infection prior runs batched)."""
    if requested is not None:
        return int(requested)
    return int(getattr(predictor, "input_size", 0) or 352)


def _check_output(probs: np.ndarray, shape: tuple[int, ...], n_classes: int) -> None:
    want = (shape[0], n_classes, shape[1], shape[2])
    if probs.shape != want:
        raise RuntimeError(f"predictor returned shape {probs.shape}, expected {want}")


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="slice", disable=not enabled, file=sys.stderr, leave=False)


def _lung_method(requested: str, is_volume: bool) -> str:
    if requested not in LUNG_METHODS:
        raise InfnetError(f"unknown lung mask method {requested!r} (use {', '.join(LUNG_METHODS)})")
    if is_volume:
        if requested in ("intensity", "none"):
            raise InfnetError(f"--lung-mask {requested} applies to 2D slices; volumes use classical or lungmask")
        if requested == "auto":
            return "lungmask" if lm.lungmask_package_available() else "classical"
        return requested
    if requested in ("classical", "lungmask"):
        raise InfnetError(f"--lung-mask {requested} needs a CT volume in HU; 2D slices use intensity or none")
    return "intensity" if requested == "auto" else requested


def segment_volume(
    predictor: SlicePredictor, volume: Volume, *, intensity: str = "auto", lung_mask: str = "auto",
    batch_size: int = 8, input_size: int | None = None, threshold: float = 0.5, probabilities: bool = False,
    margin_mm: float = CROP_MARGIN_MM, progress: bool = False, lobes=None, lobe_labels: str | None = None,
) -> SegmentationResult:  # fmt: skip
    """Segment a CT volume slice by slice along its axial axis (see :mod:`infnet.scan.preprocess`).

    ``lobes``: a lobe label map (file, TotalSegmentator folder, ``'lungmask'`` or array; see
    :func:`infnet.scan.lobes.load_lobes`, ``lobe_labels`` names its labels) adds per-lobe numbers and the score.

    Infection is kept inside the lung mask grown by ``margin_mm``; predicted infection just outside the
    threshold lung mask (dense consolidation) is added to the lung mask, so ``mask > 0`` implies ``lungs > 0``.
    """
    classes = _check_predictor(predictor)
    input_size = _input_size(predictor, input_size)
    timings: dict[str, float] = {}
    mode = resolve_intensity(volume.array, volume.modality, intensity, str(volume.path))
    volume.intensity = mode
    method = _lung_method(lung_mask, True)
    geom = volume.geometry
    lobe_map = load_lobes(lobes, volume, lobe_labels) if lobes is not None else None  # bad maps fail early
    direction = geom.direction3()
    view = axial_view(volume.array, direction)
    spacing = view_spacing(geom.spacing3(), direction)
    notes = list(volume.notes)

    t = time.perf_counter()
    lungs = np.zeros(volume.array.shape, np.uint8)
    lung_view = axial_view(lungs, direction)
    if method == "lungmask":
        image = volume.image
        if image is None:
            import SimpleITK as sitk

            image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
            image.SetSpacing(geom.spacing)
            image.SetOrigin(geom.origin)
            image.SetDirection(geom.direction)
        lungs[...] = lm.lungmask_package_mask(image).reshape(lungs.shape)
    else:
        to_hu = uint8_to_hu if mode == "8bit" else None
        notes += lm.classical_lung_mask(view, spacing, lung_view, to_hu=to_hu,
                                        superior_step=superior_step(direction))  # fmt: skip
    timings["lung_mask"] = time.perf_counter() - t

    t = time.perf_counter()
    if callable(getattr(predictor, "prepare", None)):  # build the backend (ONNX export or cache read) once, timed
        predictor.prepare()
    timings["model_load"] = time.perf_counter() - t

    t = time.perf_counter()
    mask = np.zeros(volume.array.shape, np.uint8)
    mask_view = axial_view(mask, direction)
    probs = np.zeros((len(classes), *volume.array.shape), np.uint8) if probabilities else None
    prob_views = [axial_view(p, direction) for p in probs] if probs is not None else []
    px_mm2 = spacing[1] * spacing[2]
    sampling = (spacing[1], spacing[2])
    n = view.shape[0]

    def flush(items: list) -> None:
        preds = _predict(predictor, [c for _, _, c in items], input_size, len(classes))
        for (s, box, _), prob in zip(items, preds, strict=True):
            lung_crop = np.asarray(lung_view[s][box])
            labels = labels_from_prob(prob, threshold)
            if labels.any():  # the distance transform only matters where there is infection (most slices: none)
                labels[ndi.distance_transform_edt(lung_crop == 0, sampling=sampling) > margin_mm] = 0
            mask_view[s][box] = labels
            extra = (labels > 0) & (lung_crop == 0)
            if extra.any():  # dense infection the threshold mask missed: it is lung
                lung_view[s][box] = np.where(extra, lm.nearest_label(extra, lung_crop, sampling), lung_crop)
            for c, pv in enumerate(prob_views):
                pv[s][box] = np.clip(prob[c] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        items.clear()

    with _progress(n, volume.path.name, progress) as bar:
        items: list = []  # (slice, box, 8-bit crop): only batch_size crops are held at a time
        for s in range(n):
            region = lung_view[s] > 0
            if np.count_nonzero(region) * px_mm2 >= MIN_LUNG_AREA_MM2:  # else: no lung, nothing to predict
                box = lung_box(region, sampling, margin_mm)
                raw = np.asarray(view[s][box])
                crop = window_to_uint8(raw) if mode == "hu" else np.clip(raw, 0, 255).astype(np.uint8)
                items.append((s, box, crop))
            if len(items) == batch_size or s == n - 1:
                flush(items)
            bar.update(1)
    timings["segmentation"] = time.perf_counter() - t

    t = time.perf_counter()
    measurements = measure_volume(lung_view, mask_view, classes, spacing)
    positions = slice_positions_mm(volume.array.shape, geom)
    measurements["zones"] = measure_zones(lung_view, mask_view, classes, spacing, positions)
    if lobe_map is not None:
        voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
        measurements["lobes"] = measure_lobes(lobe_map, mask, lungs, classes, voxel_ml)
        notes += measurements["lobes"]["notes"]
    timings["measure"] = time.perf_counter() - t
    settings = {
        "intensity": mode,
        "window": {"level": WINDOW_LEVEL, "width": WINDOW_WIDTH,
                   "source": "the training slices' window (estimated from COVID-SemiSeg JPG histograms); models "
                             "trained with --presentation also take lung windows of level -700..-400, width "
                             "1000..1600 HU"} if mode == "hu" else None,
        "lung_mask": method, "threshold": threshold, "input_size": input_size, "margin_mm": margin_mm,
        "orientation": "axial slices transposed to the training orientation (rows right->left, cols A->P)",
        **predictor_settings(predictor),
    }  # fmt: skip
    if not measurements["lung"]["volume_ml"]["total"]:
        notes.append("no lung found: nothing was segmented (is this a chest CT?)")
    notes += cautions.model_cautions(predictor)
    return SegmentationResult(volume.path, volume, getattr(predictor, "name", "model"), classes, mask, lungs,
                              probs, measurements, settings, notes, timings,
                              lobe_map.array if lobe_map is not None else None)  # fmt: skip


def segment_slices(
    predictor: SlicePredictor, slices: SliceSet, *, lung_mask: str = "auto", batch_size: int = 8,
    input_size: int | None = None, threshold: float = 0.5, probabilities: bool = False,
    slice_orientation: str = "radiological", progress: bool = False, margin_mm: float = CROP_MARGIN_MM,
) -> SegmentationResult:  # fmt: skip
    """Segment 8-bit 2D slices, lung-cropped (as COVID-SemiSeg) or with the whole field of view.

    ``slice_orientation``: how the slices are displayed: 'radiological' (a PACS export: the patient's right on
    the image's left, anterior at the top), 'training' (the COVID-SemiSeg layout) or 'auto' (read from the
    anatomy, radiological when unsure). It decides right/left; the orientation read from the anatomy is always
    reported. A full-field-of-view slice is cut to its lungs' box for the model, like volume slices.
    """
    classes = _check_predictor(predictor)
    input_size = _input_size(predictor, input_size)
    if slice_orientation not in s2d.ORIENTATION_CHOICES:
        raise InfnetError(f"unknown slice orientation {slice_orientation!r} (use {', '.join(s2d.ORIENTATION_CHOICES)})")
    method = _lung_method(lung_mask, False)
    t = time.perf_counter()
    masks, lungs, probs = [], [], [] if probabilities else None
    fovs, layouts, detected, turned = [], [], [], []
    n = len(slices.images)
    with _slice_tta(predictor), _progress(n, slices.path.name, progress) as bar:
        model_settings = predictor_settings(predictor)  # the views used here ('auto' is dihedral on slices)
        for i0 in range(0, n, batch_size):
            prepared = [s2d.prepare_slice(im, slice_orientation, slices.pixel_spacing, margin_mm)
                        for im in slices.images[i0 : i0 + batch_size]]  # fmt: skip
            prepared = _widen_boxes(predictor, prepared, input_size, len(classes), threshold, slices.pixel_spacing,
                                    margin_mm)  # fmt: skip
            crops = [p.image[p.box] if p.box else p.image for p in prepared]
            for p, crop_prob in zip(prepared, _predict(predictor, crops, input_size, len(classes)), strict=True):
                prob = np.zeros((len(classes), *p.image.shape), np.float32)
                prob[(slice(None), *p.box) if p.box else slice(None)] = crop_prob
                labels = labels_from_prob(prob, threshold)
                lung = p.lungs if method == "intensity" else np.zeros_like(labels)
                extra = (labels > 0) & (lung == 0)
                if method == "intensity" and extra.any():  # dense infection the intensity mask missed: lung
                    ref = lung if lung.any() else lm.split_rows(labels > 0, labels.shape[0] / 2.0)
                    lung = np.where(extra, lm.nearest_label(extra, ref, (1.0, 1.0)), lung).astype(np.uint8)
                masks.append(p.restore(labels))
                lungs.append(p.restore(lung))
                if probs is not None:
                    probs.append(p.restore(np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)))
                fovs.append(p.fov)
                layouts.append(p.k)
                detected.append(p.detected)
                turned.append(p.turned)
            bar.update(len(prepared))
    timings = {"segmentation": time.perf_counter() - t}
    measurements = measure_slices(lungs, masks, classes, slices.names, slices.pixel_spacing, method != "none")
    orientation = s2d.orientation_summary(slice_orientation, layouts, detected, slices.names, turned)
    settings = {"intensity": "8bit", "window": None, "lung_mask": method, "threshold": threshold,
                "input_size": input_size, "orientation": orientation["settings"],
                "field_of_view": {"full": fovs.count("full"), "cropped": fovs.count("cropped")},
                **model_settings}  # fmt: skip
    notes = list(slices.notes) + orientation["notes"]
    if "full" in fovs:
        notes.append(
            f"{fovs.count('full')} full-field-of-view slice(s) were cut for the model to the box of their lungs "
            "and of the infection a first pass over the whole body found "
            f"(margin {margin_mm:g} mm at {slices.pixel_spacing or s2d.ASSUMED_PIXEL_MM:g} mm per pixel"
            + ("" if slices.pixel_spacing else ", assumed")
            + "); infection outside that box is not reported"
        )
    notes += cautions.model_cautions(predictor) + cautions.window_check(predictor, slices.images, settings)
    notes.append(
        "the lung area of 2D slices is an intensity-based estimate plus predicted infection" if method == "intensity"
        else "no lung mask (--lung-mask none): percentages are not computed"
    )  # fmt: skip
    return SegmentationResult(slices.path, slices, getattr(predictor, "name", "model"), classes, masks, lungs,
                              probs, measurements, settings, notes, timings)  # fmt: skip
