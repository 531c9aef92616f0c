"""The standard protocol: one fixed threshold, overlap scores per image and pooled, and HD95.

The prediction is a probability map (uint8 0-255 is scaled to [0, 1], no re-normalisation; boolean maps are
used as they are) binarised at ``p >= 0.5``; the GT is binarised as value > 128 (see
:func:`infnet.metrics.paper.binarize_gt`). All arrays are 2D (H x W) and of one shape.

Conventions for empty masks (documented and tested):

* Dice and IoU: both masks empty -> 1.0 (perfect agreement); exactly one empty -> 0.0.
* Sensitivity TP/(TP+FN), specificity TN/(TN+FP), precision TP/(TP+FP): a zero denominator (no GT
  foreground, no GT background, nothing predicted) makes the score undefined, NaN; NaN scores are left out
  of the per-image means (``nanmean``).
* HD95: both empty -> 0.0; exactly one empty -> NaN (left out of the mean).

Pooled (data-set level) scores apply the same formulas to the confusion counts summed over all images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from infnet.metrics.paper import binarize_gt

STANDARD_KEYS = ("dice", "iou", "sensitivity", "specificity", "precision", "hd95", "dice_pooled")
POOLED_KEYS = ("dice", "iou", "sensitivity", "specificity", "precision")


def binarize_prediction(pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``p >= threshold`` of a probability map: uint8 is p = value / 255; float must be in [0, 1]."""
    pred = np.asarray(pred)
    if pred.dtype == bool:
        return pred
    if pred.dtype == np.uint8:
        return pred.astype(np.float64) / 255.0 >= threshold
    if np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"binarize_prediction: expected uint8, bool or float, got {pred.dtype}")
    if pred.size and (np.nanmin(pred) < 0 or np.nanmax(pred) > 1):
        raise ValueError("binarize_prediction: float predictions must lie in [0, 1]")
    return pred >= threshold


@dataclass(frozen=True)
class Counts:
    """Pixel confusion counts of a binary prediction against a binary GT."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


def confusion(pred: np.ndarray, gt: np.ndarray) -> Counts:
    """TP, FP, FN, TN of two boolean HxW masks."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"confusion: expected two 2D masks of one shape, got {pred.shape} and {gt.shape}")
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gt)) - tp
    return Counts(tp, fp, fn, gt.size - tp - fp - fn)


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def dice_from_counts(c: Counts) -> float:
    """2TP / (2TP + FP + FN); 1.0 when both masks are empty."""
    den = 2 * c.tp + c.fp + c.fn
    return 2 * c.tp / den if den else 1.0


def iou_from_counts(c: Counts) -> float:
    """TP / (TP + FP + FN); 1.0 when both masks are empty."""
    den = c.tp + c.fp + c.fn
    return c.tp / den if den else 1.0


def sensitivity_from_counts(c: Counts) -> float:
    """TP / (TP + FN); NaN when the GT is empty."""
    return _ratio(c.tp, c.tp + c.fn)


def specificity_from_counts(c: Counts) -> float:
    """TN / (TN + FP); NaN when the GT has no background."""
    return _ratio(c.tn, c.tn + c.fp)


def precision_from_counts(c: Counts) -> float:
    """TP / (TP + FP); NaN when nothing is predicted."""
    return _ratio(c.tp, c.tp + c.fp)


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean HxW masks (1.0 when both are empty)."""
    return dice_from_counts(confusion(pred, gt))


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two boolean HxW masks (1.0 when both are empty)."""
    return iou_from_counts(confusion(pred, gt))


def sensitivity(pred: np.ndarray, gt: np.ndarray) -> float:
    """Recall of boolean HxW masks (NaN for an empty GT)."""
    return sensitivity_from_counts(confusion(pred, gt))


def specificity(pred: np.ndarray, gt: np.ndarray) -> float:
    """True-negative rate of boolean HxW masks (NaN when the GT covers the image)."""
    return specificity_from_counts(confusion(pred, gt))


def precision(pred: np.ndarray, gt: np.ndarray) -> float:
    """Precision of boolean HxW masks (NaN for an empty prediction)."""
    return precision_from_counts(confusion(pred, gt))


_CROSS = ndimage.generate_binary_structure(2, 1)


def surface(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask: the mask minus its 4-connected erosion (border pixels count)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def surface_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) from every surface pixel of ``a`` to the nearest surface pixel of ``b``.

    Both masks must be non-empty.
    """
    sa, sb = surface(a), surface(b)
    return ndimage.distance_transform_edt(~sb)[sa]


def hd95(pred: np.ndarray, gt: np.ndarray) -> float:
    """Symmetric 95th-percentile Hausdorff distance in pixels between two boolean HxW masks.

    The 95th percentile (numpy's linear interpolation) of the pooled surface-to-surface distances in both
    directions. Both empty -> 0.0; exactly one empty -> NaN.
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"hd95: expected two 2D masks of one shape, got {pred.shape} and {gt.shape}")
    has_pred, has_gt = bool(pred.any()), bool(gt.any())
    if not has_pred and not has_gt:
        return 0.0
    if has_pred != has_gt:
        return float("nan")
    d = np.concatenate([surface_distances(pred, gt), surface_distances(gt, pred)])
    return float(np.percentile(d, 95))


@dataclass(frozen=True)
class StandardImageMetrics:
    """One image under the standard protocol."""

    counts: Counts
    dice: float
    iou: float
    sensitivity: float
    specificity: float
    precision: float
    hd95: float

    def scalars(self) -> dict[str, float]:
        """Per-image scores (and counts) for tables and CSV."""
        c = self.counts
        return {
            "dice": self.dice,
            "iou": self.iou,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "precision": self.precision,
            "hd95": self.hd95,
            "tp": c.tp,
            "fp": c.fp,
            "fn": c.fn,
            "tn": c.tn,
        }


def standard_image_metrics(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> StandardImageMetrics:
    """Standard-protocol scores of one prediction (HxW uint8 0-255, bool, or float in [0, 1]) against its GT.

    The prediction must have the GT's size.
    """
    gt_bin = binarize_gt(gt)
    pred_bin = binarize_prediction(pred, threshold)
    c = confusion(pred_bin, gt_bin)
    return StandardImageMetrics(
        counts=c,
        dice=dice_from_counts(c),
        iou=iou_from_counts(c),
        sensitivity=sensitivity_from_counts(c),
        specificity=specificity_from_counts(c),
        precision=precision_from_counts(c),
        hd95=hd95(pred_bin, gt_bin),
    )


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def summarize_pooled(items: Sequence[StandardImageMetrics]) -> dict[str, float]:
    """Data-set level scores from the confusion counts summed over all images (keys :data:`POOLED_KEYS`)."""
    if not items:
        raise ValueError("summarize_pooled: no images")
    total = Counts(0, 0, 0, 0)
    for item in items:
        total = total + item.counts
    return {
        "dice": dice_from_counts(total),
        "iou": iou_from_counts(total),
        "sensitivity": sensitivity_from_counts(total),
        "specificity": specificity_from_counts(total),
        "precision": precision_from_counts(total),
    }


def summarize_standard(items: Sequence[StandardImageMetrics]) -> dict[str, float]:
    """Per-image means (NaN-skipping) of the scores plus the pooled Dice: exactly :data:`STANDARD_KEYS`."""
    if not items:
        raise ValueError("summarize_standard: no images")
    out = {key: _nanmean([getattr(item, key) for item in items]) for key in STANDARD_KEYS[:-1]}
    out["dice_pooled"] = summarize_pooled(items)["dice"]
    return out
