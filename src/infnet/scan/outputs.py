"""Write a :class:`~infnet.scan.pipeline.SegmentationResult`: masks in the input's geometry, then the report.

Volumes and DICOM series: ``mask.nii.gz`` (labels, see report.json ``model.mask_labels``), ``lungs.nii.gz``
(1 right, 2 left) and, with probabilities, ``probability_<class>.nii.gz`` (uint8, probability x 255), all with
the input's size, spacing, origin and direction. 2D inputs: ``masks/<name>.png`` at the input size (binary:
0/255; multi-class: palette PNG with indices like COVID-SemiSeg), ``lungs/<name>.png`` and
``probabilities/<name>_<class>.png``. With ``--lobes``: ``lobes.nii.gz`` (1-5 = RUL, RML, RLL, LUL, LLL).
DICOM inputs: ``seg.dcm``, a DICOM Segmentation (:mod:`infnet.scan.dicom_seg`). Every file is written through
a temporary file and a rename.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infnet.errors import InfnetError
from infnet.io.images import atomic_write_bytes, write_png
from infnet.scan.dicom_seg import (
    DICOM_FORMATS,
    SEG_FILE,
    check_dicom_seg,
    dicom_identity,
    dicom_seg_bytes,
    seg_problem,
    source_instances,
)
from infnet.scan.report import write_report
from infnet.scan.volume_io import write_label_png, write_volume_like

if TYPE_CHECKING:
    from infnet.scan.result import SegmentationResult


def check_output_dir(source: str | os.PathLike, outdir: str | os.PathLike) -> Path:
    """Refuse an output folder that is the input, inside the input folder, or an existing file."""
    src, out = Path(source).resolve(), Path(outdir).resolve()
    if out == src or (src.is_dir() and src in out.parents):
        raise InfnetError(f"{outdir}: output folder is the input or inside it; choose a folder outside {source}")
    if out.exists() and not out.is_dir():
        raise InfnetError(f"{outdir}: exists and is not a folder")
    return out


def write_outputs(
    result: SegmentationResult, outdir: str | os.PathLike, *, overlays: bool = True, report: bool = True,
    dicom_seg: bool | None = None,
) -> dict[str, str]:  # fmt: skip
    """Write masks (and the report unless ``report=False``) into ``outdir``; returns {kind: relative path}.

    ``dicom_seg``: None writes ``seg.dcm`` (DICOM SEG) for DICOM inputs, True requires it, False skips it.
    """
    out = check_output_dir(result.source, outdir)
    seg = check_dicom_seg(result, dicom_seg)
    identity = None
    if result.is_volume and result.scan.format in DICOM_FORMATS:
        try:  # before anything is written: a series that cannot be matched fails cleanly
            datasets = source_instances(result.scan)
            identity = dicom_identity(datasets)
        except InfnetError as exc:
            if dicom_seg:  # asked for explicitly: an error; by default: a note, and no SEG
                raise
            result.notes.append(f"no DICOM SEG written: {exc}")
            seg = False
        problem = seg_problem(datasets) if seg else None
        if problem and dicom_seg:
            raise InfnetError(f"{result.source}: cannot write a DICOM SEG: {problem}")
        if problem:
            result.notes.append(f"no DICOM SEG written: {problem}")
            seg = False
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    files: dict[str, str] = {}
    if result.is_volume:
        geom = result.scan.geometry
        write_volume_like(result.mask, geom, out / "mask.nii.gz")
        write_volume_like(result.lungs, geom, out / "lungs.nii.gz")
        files.update({"mask": "mask.nii.gz", "lungs": "lungs.nii.gz"})
        if result.probabilities is not None:
            for c, name in enumerate(result.classes):
                write_volume_like(result.probabilities[c], geom, out / f"probability_{name}.nii.gz")
                files[f"probability_{name}"] = f"probability_{name}.nii.gz"
        if result.lobes is not None:
            write_volume_like(result.lobes, geom, out / "lobes.nii.gz")
            files["lobes"] = "lobes.nii.gz"
        if seg:
            atomic_write_bytes(out / SEG_FILE, dicom_seg_bytes(result, datasets))
            files["dicom_seg"] = SEG_FILE
    else:
        multi = len(result.classes) > 1
        for i, name in enumerate(result.scan.names):
            mask = result.mask[i]
            if multi:
                write_label_png(out / "masks" / f"{name}.png", mask, palette=True)
            else:
                write_png(out / "masks" / f"{name}.png", (mask > 0).astype(np.uint8) * 255)
            if result.settings.get("lung_mask") != "none":
                write_png(out / "lungs" / f"{name}.png", result.lungs[i])
            if result.probabilities is not None:
                for c, cname in enumerate(result.classes):
                    write_png(out / "probabilities" / f"{name}_{cname}.png", result.probabilities[i][c])
        files["masks"] = "masks/"
        if result.settings.get("lung_mask") != "none":
            files["lungs"] = "lungs/"
        if result.probabilities is not None:
            files["probabilities"] = "probabilities/"
    result.timings["write"] = time.perf_counter() - t  # masks and volumes; the report itself comes after
    if report:
        write_report(result, out, files, overlays=overlays, dicom=identity)
    return files
