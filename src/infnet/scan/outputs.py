"""Write a :class:`~infnet.scan.pipeline.SegmentationResult`: masks in the input's geometry, then the report.

Volumes and DICOM series: ``mask.nii.gz`` (labels, see report.json ``model.mask_labels``), ``lungs.nii.gz``
(1 right, 2 left) and, with probabilities, ``probability_<class>.nii.gz`` (uint8, probability x 255), all with
the input's size, spacing, origin and direction. 2D inputs: ``masks/<name>.png`` at the input size (binary:
0/255; multi-class: palette PNG with indices like COVID-SemiSeg), ``lungs/<name>.png`` and
``probabilities/<name>_<class>.png``. Every file is written through a temporary file and a rename.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infnet.errors import InfnetError
from infnet.io.images import write_png
from infnet.scan.report import write_report
from infnet.scan.volume_io import write_label_png, write_volume_like

if TYPE_CHECKING:
    from infnet.scan.pipeline import SegmentationResult


def check_output_dir(source: str | os.PathLike, outdir: str | os.PathLike) -> Path:
    """Refuse an output folder that is the input, inside the input folder, or an existing file."""
    src, out = Path(source).resolve(), Path(outdir).resolve()
    if out == src or (src.is_dir() and src in out.parents):
        raise InfnetError(f"{outdir}: output folder is the input or inside it; choose a folder outside {source}")
    if out.exists() and not out.is_dir():
        raise InfnetError(f"{outdir}: exists and is not a folder")
    return out


def write_outputs(
    result: SegmentationResult, outdir: str | os.PathLike, *, overlays: bool = True, report: bool = True
) -> dict[str, str]:
    """Write masks (and the report unless ``report=False``) into ``outdir``; returns {kind: relative path}."""
    out = check_output_dir(result.source, outdir)
    out.mkdir(parents=True, exist_ok=True)
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
    if report:
        write_report(result, out, files, overlays=overlays)
    return files
