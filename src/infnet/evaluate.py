"""Evaluate a folder of predicted maps against a folder of GT masks (paper and/or standard protocol).

Files pair by stem (``6.png`` with ``6.png``); the GT folder decides which images are evaluated, a GT without
a prediction is an error naming it, and predictions without a GT are ignored (listed in the result).
Predictions are grey-level probability maps (0-255) or binary masks (0/255, mode '1' PNGs); GTs are binary
(value > 128, or mode '1').

Size policy (both protocols): a prediction of another size than its GT is resized to the GT size (bilinear,
as the authors' MATLAB tool resizes) when the two aspect ratios agree within 2% (a pure rescale, e.g. a map
saved at network resolution of a square slice). A larger aspect-ratio difference is an error naming the
file: it means a wrong pairing or a map of a crop, and resizing it would score a distorted mask.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from infnet.data.pairs import index_by_stem, natural_key
from infnet.errors import InfnetError
from infnet.io.images import atomic_write_text, is_image_file, read_gray
from infnet.metrics.paper import (
    PAPER_KEYS,
    PaperImageMetrics,
    binarize_gt,
    paper_image_metrics,
    summarize_paper,
    summarize_paper_extra,
)
from infnet.metrics.standard import (
    STANDARD_KEYS,
    StandardImageMetrics,
    standard_image_metrics,
    summarize_pooled,
    summarize_standard,
)

PROTOCOLS = ("paper", "standard", "both")
MAX_ASPECT_DIFFERENCE = 0.02


@dataclass
class ImageResult:
    """Scores of one image (``paper`` / ``standard`` is None when that protocol was not run)."""

    stem: str
    height: int
    width: int
    pred_path: Path | None = None
    gt_path: Path | None = None
    resized: bool = False
    paper: PaperImageMetrics | None = None
    standard: StandardImageMetrics | None = None


@dataclass
class EvaluationResult:
    """Per-image results and the data-set summaries of one evaluation."""

    protocol: str
    images: list[ImageResult]
    pred_dir: Path | None = None
    gt_dir: Path | None = None
    unmatched_predictions: list[str] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def paper(self) -> dict[str, float] | None:
        """``meanDic, meanSen, meanSpe, Sm, meanEm, MAE`` (None without the paper protocol)."""
        items = [im.paper for im in self.images if im.paper is not None]
        return summarize_paper(items) if items else None

    @property
    def paper_extra(self) -> dict[str, float] | None:
        """max-over-threshold and adaptive scores of the authors' earlier tool."""
        items = [im.paper for im in self.images if im.paper is not None]
        return summarize_paper_extra(items) if items else None

    @property
    def standard(self) -> dict[str, float] | None:
        """``dice, iou, sensitivity, specificity, precision, hd95, dice_pooled`` (None if not run)."""
        items = [im.standard for im in self.images if im.standard is not None]
        return summarize_standard(items) if items else None

    @property
    def standard_pooled(self) -> dict[str, float] | None:
        """Scores from confusion counts summed over all images."""
        items = [im.standard for im in self.images if im.standard is not None]
        return summarize_pooled(items) if items else None

    def summary(self) -> dict:
        """The JSON summary: ``{"n_images", "protocol", ..., "paper": {...}, "standard": {...}}``."""
        out: dict = {"n_images": self.n_images, "protocol": self.protocol}
        if self.pred_dir is not None:
            out["pred"] = str(self.pred_dir)
        if self.gt_dir is not None:
            out["gt"] = str(self.gt_dir)
        for key in ("paper", "paper_extra", "standard", "standard_pooled"):
            value = getattr(self, key)
            if value is not None:
                out[key] = {k: _json_number(v) for k, v in value.items()}
        out["n_resized"] = sum(im.resized for im in self.images)
        if self.standard is not None:
            out["n_hd95_undefined"] = sum(math.isnan(im.standard.hd95) for im in self.images if im.standard)
        out["unmatched_predictions"] = list(self.unmatched_predictions)
        return out

    def input_paths(self) -> set[Path]:
        """Every file read by this evaluation (resolved), so that outputs never overwrite one."""
        paths = set()
        for im in self.images:
            for p in (im.pred_path, im.gt_path):
                if p is not None:
                    paths.add(Path(p).resolve())
        return paths


def _json_number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise InfnetError(f"unknown protocol '{protocol}' (choose from {', '.join(PROTOCOLS)})")


def match_size(pred: np.ndarray, gt_shape: tuple[int, int], name: str = "prediction") -> tuple[np.ndarray, bool]:
    """``pred`` (uint8 HxW) at ``gt_shape`` and whether it was resized; see the module's size policy."""
    if pred.shape == tuple(gt_shape):
        return pred, False
    ph, pw = pred.shape
    gh, gw = gt_shape
    ratio = (pw / ph) / (gw / gh)
    if abs(ratio - 1.0) > MAX_ASPECT_DIFFERENCE:
        raise InfnetError(
            f"{name}: size {pw}x{ph} does not match the GT size {gw}x{gh} "
            f"(aspect ratios differ by {abs(ratio - 1.0):.0%}, more than {MAX_ASPECT_DIFFERENCE:.0%})"
        )
    resized = Image.fromarray(pred).resize((gw, gh), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8), True


def evaluate_image(
    pred: np.ndarray, gt: np.ndarray, protocol: str = "both"
) -> tuple[PaperImageMetrics | None, StandardImageMetrics | None]:
    """Score one prediction (uint8/bool/float HxW at GT size) against its GT (HxW) under ``protocol``."""
    _check_protocol(protocol)
    gt_bin = binarize_gt(gt)
    paper = paper_image_metrics(pred, gt_bin) if protocol in ("paper", "both") else None
    standard = standard_image_metrics(pred, gt_bin) if protocol in ("standard", "both") else None
    return paper, standard


def evaluate_arrays(items: Iterable[tuple[str, np.ndarray, np.ndarray]], protocol: str = "both") -> EvaluationResult:
    """Evaluate in-memory ``(stem, prediction, gt)`` triples (each prediction already at its GT's size)."""
    _check_protocol(protocol)
    images = []
    for stem, pred, gt in items:
        pred = np.asarray(pred)
        if pred.shape != np.asarray(gt).shape:
            raise InfnetError(f"{stem}: prediction shape {pred.shape} differs from GT shape {np.asarray(gt).shape}")
        paper, standard = evaluate_image(pred, gt, protocol)
        images.append(ImageResult(stem, pred.shape[0], pred.shape[1], paper=paper, standard=standard))
    if not images:
        raise InfnetError("nothing to evaluate: no images")
    return EvaluationResult(protocol, images)


def pair_predictions(pred: str | Path, gt: str | Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """``(stem, pred_file, gt_file)`` for every GT (natural order) and the stems of unmatched predictions.

    ``pred`` and ``gt`` are two folders or two image files.
    """
    pred, gt = Path(pred), Path(gt)
    for path, what in ((gt, "GT"), (pred, "prediction")):
        if not path.exists():
            raise InfnetError(f"{path}: {what} folder or file not found")
    if pred.is_file() or gt.is_file():
        if not (pred.is_file() and gt.is_file()):
            raise InfnetError(f"{pred} and {gt}: give two folders or two image files, not one of each")
        for path in (pred, gt):
            if not is_image_file(path):
                raise InfnetError(f"{path}: not an image file (expected .png, .jpg, .bmp or .tif)")
        return [(gt.stem, pred, gt)], []
    gts = index_by_stem(gt)
    preds = index_by_stem(pred)
    if not gts:
        raise InfnetError(f"{gt}: no GT images found")
    if not preds:
        raise InfnetError(f"{pred}: no prediction images found")
    pairs = []
    for stem in sorted(gts, key=natural_key):
        if stem not in preds:
            raise InfnetError(f"{gts[stem]}: no prediction with stem '{stem}' in {pred}")
        pairs.append((stem, preds[stem], gts[stem]))
    extra = sorted(set(preds) - set(gts), key=natural_key)
    return pairs, extra


def evaluate_folders(pred_dir: str | Path, gt_dir: str | Path, protocol: str = "both") -> EvaluationResult:
    """Evaluate every GT in ``gt_dir`` against the prediction of the same stem in ``pred_dir``.

    ``protocol``: ``paper`` (the authors' MATLAB protocol), ``standard`` (p >= 0.5, HD95) or ``both``.
    Two image files may be given instead of two folders. Raises :class:`InfnetError` naming the file at fault.
    """
    _check_protocol(protocol)
    pairs, extra = pair_predictions(pred_dir, gt_dir)
    images = []
    for stem, pred_path, gt_path in pairs:
        gt = read_gray(gt_path)
        pred, resized = match_size(read_gray(pred_path), gt.shape, str(pred_path))
        paper, standard = evaluate_image(pred, gt, protocol)
        images.append(ImageResult(stem, gt.shape[0], gt.shape[1], pred_path, gt_path, resized, paper, standard))
    return EvaluationResult(protocol, images, Path(pred_dir), Path(gt_dir), extra)


# ------------------------------------------------------------------------------------------------- outputs


def _check_output(result: EvaluationResult, path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise InfnetError(f"{path}: is a folder, expected an output file name")
    if path.resolve() in result.input_paths():
        raise InfnetError(f"{path}: is one of the evaluated input files; refusing to overwrite it")
    return path


def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    return "nan" if math.isnan(value) else f"{value:.6f}"


def csv_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-image table (paper columns ``paper_*``, standard columns ``std_*``)."""
    header = ["stem", "pred", "gt", "height", "width", "resized"]
    rows = []
    for i, im in enumerate(result.images):
        row = [im.stem, str(im.pred_path or ""), str(im.gt_path or ""), _fmt(im.height), _fmt(im.width)]
        row.append(_fmt(im.resized))
        for prefix, metrics in (("paper_", im.paper), ("std_", im.standard)):
            if metrics is None:
                continue
            values = metrics.scalars()
            if i == 0:
                header += [prefix + k for k in values]
            row += [_fmt(v) for v in values.values()]
        rows.append(row)
    return header, rows


def write_csv(result: EvaluationResult, path: str | Path) -> Path:
    """Write the per-image CSV atomically; refuses to overwrite an input file."""
    path = _check_output(result, Path(path))
    header, rows = csv_rows(result)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return path


def write_json(result: EvaluationResult, path: str | Path) -> Path:
    """Write the summary JSON atomically (NaN as null); refuses to overwrite an input file."""
    path = _check_output(result, Path(path))
    atomic_write_text(path, json.dumps(result.summary(), indent=2, allow_nan=False) + "\n")
    return path


def _table(title: str, values: dict[str, float]) -> list[str]:
    cells = [(k, "n/a" if math.isnan(v) else f"{v:.3f}") for k, v in values.items()]
    widths = [max(len(k), len(v)) for k, v in cells]
    return [
        title,
        ("  " + "  ".join(k.ljust(w) for (k, _), w in zip(cells, widths, strict=True))).rstrip(),
        ("  " + "  ".join(v.ljust(w) for (_, v), w in zip(cells, widths, strict=True))).rstrip(),
    ]


def format_table(result: EvaluationResult) -> str:
    """A short human-readable summary of the data-set scores."""
    where = f" (pred: {result.pred_dir}, gt: {result.gt_dir})" if result.pred_dir else ""
    lines = [f"{result.n_images} images{where}"]
    if result.paper is not None:
        lines += _table("paper protocol (authors' MATLAB, 256 thresholds):", result.paper)
    if result.standard is not None:
        lines += _table("standard protocol (p >= 0.5; hd95 in pixels):", result.standard)
    notes = []
    n_resized = sum(im.resized for im in result.images)
    if n_resized:
        notes.append(f"{n_resized} prediction(s) resized to the GT size")
    if result.unmatched_predictions:
        notes.append(f"{len(result.unmatched_predictions)} prediction(s) without GT ignored")
    if notes:
        lines.append("note: " + "; ".join(notes))
    return "\n".join(lines)


__all__ = [
    "PAPER_KEYS",
    "PROTOCOLS",
    "STANDARD_KEYS",
    "EvaluationResult",
    "ImageResult",
    "evaluate_arrays",
    "evaluate_folders",
    "evaluate_image",
    "format_table",
    "match_size",
    "pair_predictions",
    "write_csv",
    "write_json",
]
