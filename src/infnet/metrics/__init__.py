"""Segmentation metrics: S-measure / E-measure, the authors' paper protocol and a standard protocol.

All metric functions are pure and take 2D (H x W) arrays; see each module for the conventions on empty masks.
Defined edge cases: every reported score lies in [0, 1] (each threshold's E-measure is clipped to [0, 1] before
means and maxima: the authors' n/(n-1) normalisation lets a perfect map reach n/(n-1), e.g. meanEm 1.0000066
for all-empty GT and prediction; only the raw per-threshold curves keep it, to match the authors' files).
Specificity: paper protocol 0 on an empty GT (the authors' "all 0 when TP = 0" rule, kept because their
published numbers include such slices), NaN when the GT has no background (left out of the means); standard
protocol TN / (TN + FP), 1 for empty GT and prediction, NaN (left out) when there are no negatives.
"""

from infnet.metrics.paper import (
    PAPER_EXTRA_KEYS,
    PAPER_KEYS,
    PaperImageMetrics,
    binarize_gt,
    mae,
    minmax_normalize,
    paper_image_metrics,
    summarize_paper,
    summarize_paper_extra,
)
from infnet.metrics.standard import (
    POOLED_KEYS,
    STANDARD_KEYS,
    Counts,
    StandardImageMetrics,
    binarize_prediction,
    confusion,
    dice,
    hd95,
    iou,
    precision,
    sensitivity,
    specificity,
    standard_image_metrics,
    summarize_pooled,
    summarize_standard,
)
from infnet.metrics.structure import (
    THRESHOLDS,
    EMeasureScores,
    e_measure,
    e_measure_curve,
    e_measure_scores,
    matlab_thresholds,
    s_measure,
)

__all__ = [
    "PAPER_EXTRA_KEYS",
    "PAPER_KEYS",
    "POOLED_KEYS",
    "STANDARD_KEYS",
    "THRESHOLDS",
    "Counts",
    "EMeasureScores",
    "PaperImageMetrics",
    "StandardImageMetrics",
    "binarize_gt",
    "binarize_prediction",
    "confusion",
    "dice",
    "e_measure",
    "e_measure_curve",
    "e_measure_scores",
    "hd95",
    "iou",
    "mae",
    "matlab_thresholds",
    "minmax_normalize",
    "paper_image_metrics",
    "precision",
    "s_measure",
    "sensitivity",
    "specificity",
    "standard_image_metrics",
    "summarize_paper",
    "summarize_paper_extra",
    "summarize_pooled",
    "summarize_standard",
]
