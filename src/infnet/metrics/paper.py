"""The paper protocol: the Inf-Net authors' MATLAB evaluation (``EvaluationTool/main.m``), reproduced.

Per image: the GT is binarised as value > 128 (boolean input is used as is); the prediction is converted like
MATLAB's ``im2double`` (uint8 / 255) and min-max normalised like ``mapminmax(x, 0, 1)`` (a constant map passes
through unchanged); then for the 256 thresholds ``t = 1:-1/255:0``:

* Dice = 2TP / (|G| + |P|), Sen = TP / |G|, Spe = TN / (TN + FP), with ``P = pred >= t``; all three are 0
  when TP = 0 (``Fmeasure_calu.m``). Spe is NaN when the GT has no background (MATLAB's 0/0; such images
  are skipped in the means here, where MATLAB would return NaN for the whole data set).
* E-measure of ``pred > t`` (strictly greater, as in the authors' ``main.m``). The per-threshold curve keeps the
  authors' ``n - 1`` normalisation (a perfect map scores n/(n-1), as in their ``.mat`` files); the reported
  E-measure scores (meanEm, maxEm, adpEm, per-image ``em_*``) clip each threshold's score to [0, 1] first (a
  change of at most 1/(n-1), 1e-5 on a 352 x 352 slice, against the authors' numbers).

Empty GT (no infection on the slice): TP is 0 at every threshold, so by the authors' rule Dice, Sen and Spe are
0 whatever the prediction (an empty prediction too), while the E-measure and S-measure reward an empty
prediction (1). This is kept as is, since the authors' published multi-class numbers include such slices; the
standard protocol gives the defined values (specificity TN / (TN + FP), sensitivity undefined), and ``infnet
evaluate`` prints a note when GT masks are empty.

S-measure (alpha 0.5) and MAE = mean |G - pred| per image. Data set: meanDic, meanSen, meanSpe, meanEm =
mean over thresholds of the mean over images; Sm and MAE = mean over images. Adaptive scores (the authors'
earlier tool) use the threshold min(2 * mean(pred), 1): Dice/Sen/Spe of ``pred >= thr``, E-measure of
``pred > thr``. TP/FP for all thresholds come from sorted pixel values and ``searchsorted`` (no
per-threshold pass over the image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from infnet.metrics.structure import (
    THRESHOLDS,
    adaptive_threshold,
    clip_unit,
    count_above,
    e_measure_from_counts,
    s_measure,
)

PAPER_KEYS = ("meanDic", "meanSen", "meanSpe", "Sm", "meanEm", "MAE")
PAPER_EXTRA_KEYS = ("maxDic", "maxSen", "maxSpe", "maxEm", "adpDic", "adpSen", "adpSpe", "adpEm")


def binarize_gt(gt: np.ndarray) -> np.ndarray:
    """Boolean GT: boolean arrays as they are, otherwise ``value > 128`` (0/255 masks, mode-'1' PNGs)."""
    gt = np.asarray(gt)
    if gt.dtype == bool:
        return gt
    return gt > 128


def minmax_normalize(pred: np.ndarray) -> np.ndarray:
    """MATLAB ``mapminmax(im2double(pred), 0, 1)``: uint8 / 255 (bool: 0/1), then (x - min) / (max - min).

    A constant map is returned unchanged (as ``mapminmax`` does). Float input is taken as already in [0, 1].
    """
    pred = np.asarray(pred)
    if pred.dtype == bool:
        x = pred.astype(np.float64)
    elif pred.dtype == np.uint8:
        x = pred.astype(np.float64) / 255.0
    elif np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"minmax_normalize: expected uint8, bool or float, got {pred.dtype}")
    else:
        x = pred.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("minmax_normalize: prediction contains NaN or infinity")
    if hi == lo:
        return x
    gain = 1.0 / (hi - lo)
    return (x - lo) * gain


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between a float map in [0, 1] (HxW) and a boolean GT (HxW); 0 for a perfect map."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=bool)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"mae: expected two 2D arrays of one shape, got {pred.shape} and {gt.shape}")
    return float(np.abs(gt - pred).mean())


@dataclass(frozen=True)
class PaperImageMetrics:
    """One image under the paper protocol: curves over :data:`THRESHOLDS` and scalar scores."""

    dice: np.ndarray  # (256,)
    sensitivity: np.ndarray  # (256,)
    specificity: np.ndarray  # (256,), NaN when the GT has no background
    e_measure: np.ndarray  # (256,)
    s_measure: float
    mae: float
    adp_dice: float
    adp_sensitivity: float
    adp_specificity: float
    adp_e_measure: float
    empty_gt: bool = False  # no GT foreground: Dice/Sen/Spe are 0 at every threshold by the authors' rule

    def scalars(self) -> dict[str, float]:
        """Per-image summary (threshold means, max E-measure, adaptive scores, Sm, MAE) for tables and CSV."""
        return {
            "dice": float(self.dice.mean()),
            "sensitivity": float(self.sensitivity.mean()),
            "specificity": float(np.mean(self.specificity)),
            "em_mean": float(clip_unit(self.e_measure).mean()),
            "em_adp": clip_unit(self.adp_e_measure),
            "em_max": float(clip_unit(self.e_measure).max()),
            "sm": self.s_measure,
            "mae": self.mae,
        }


def _fmeasure_calu(tp: np.ndarray, n_pred: np.ndarray, n_fg: int, n: int):
    """Dice, Sen, Spe from counts with the authors' rule 'all 0 when TP == 0'. Arrays in, arrays out."""
    tp = np.asarray(tp, dtype=np.float64)
    n_pred = np.asarray(n_pred, dtype=np.float64)
    n_bg = n - n_fg
    hit = tp > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(hit, 2.0 * tp / (n_fg + n_pred), 0.0)
        sen = np.where(hit, tp / max(n_fg, 1), 0.0)
        fp = n_pred - tp
        spe = np.where(hit, (n_bg - fp) / n_bg if n_bg > 0 else np.nan, 0.0)
    return dice, sen, spe


def paper_image_metrics(pred: np.ndarray, gt: np.ndarray) -> PaperImageMetrics:
    """Paper-protocol metrics of a prediction (HxW uint8 0-255, bool or float in [0, 1]) against its GT (HxW).

    The prediction must already have the GT's size (resize first); it is min-max normalised here.
    """
    pred = np.asarray(pred)
    gt = binarize_gt(gt)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"paper_image_metrics: expected two 2D arrays of one shape, got {pred.shape} and {gt.shape}")
    x = minmax_normalize(pred)
    if x.min() < 0 or x.max() > 1:
        raise ValueError("paper_image_metrics: float predictions must lie in [0, 1]")
    n = gt.size
    fg = np.sort(x[gt], axis=None)
    bg = np.sort(x[~gt], axis=None)
    n_fg = fg.size

    tp_ge = count_above(fg, THRESHOLDS, strict=False)
    fp_ge = count_above(bg, THRESHOLDS, strict=False)
    dice, sen, spe = _fmeasure_calu(tp_ge, tp_ge + fp_ge, n_fg, n)

    tp_gt = count_above(fg, THRESHOLDS, strict=True)
    fp_gt = count_above(bg, THRESHOLDS, strict=True)
    em = e_measure_from_counts(tp_gt, fp_gt, n_fg, n)

    # Adaptive threshold 2 * mean, capped at 1: Dice/Sen/Spe on pred >= thr, E-measure on pred > thr.
    thr = np.array([adaptive_threshold(x)])
    tp_a = count_above(fg, thr, strict=False)
    a_dice, a_sen, a_spe = _fmeasure_calu(tp_a, tp_a + count_above(bg, thr, strict=False), n_fg, n)
    a_em = e_measure_from_counts(count_above(fg, thr, strict=True), count_above(bg, thr, strict=True), n_fg, n)

    mae = float((fg.size - fg.sum() + bg.sum()) / n)  # mean |G - x| with G in {0, 1}
    return PaperImageMetrics(
        dice=dice,
        sensitivity=sen,
        specificity=spe,
        e_measure=em,
        s_measure=s_measure(x, gt),
        mae=mae,
        adp_dice=float(a_dice[0]),
        adp_sensitivity=float(a_sen[0]),
        adp_specificity=float(a_spe[0]),
        adp_e_measure=float(a_em[0]),
        empty_gt=n_fg == 0,
    )


def _column_means(items: Sequence[PaperImageMetrics], field: str) -> np.ndarray:
    stack = np.stack([getattr(item, field) for item in items])
    if field == "e_measure":  # each threshold's score in [0, 1] (see the module docstring)
        stack = clip_unit(stack)
    if np.isnan(stack).all(axis=0).any():
        return np.full(stack.shape[1], np.nan)
    return np.nanmean(stack, axis=0)


def summarize_paper(items: Sequence[PaperImageMetrics]) -> dict[str, float]:
    """The authors' data-set scores: exactly the keys ``meanDic, meanSen, meanSpe, Sm, meanEm, MAE``."""
    if not items:
        raise ValueError("summarize_paper: no images")
    return {
        "meanDic": float(_column_means(items, "dice").mean()),
        "meanSen": float(_column_means(items, "sensitivity").mean()),
        "meanSpe": float(_column_means(items, "specificity").mean()),
        "Sm": float(np.mean([item.s_measure for item in items])),
        "meanEm": float(_column_means(items, "e_measure").mean()),
        "MAE": float(np.mean([item.mae for item in items])),
    }


def summarize_paper_extra(items: Sequence[PaperImageMetrics]) -> dict[str, float]:
    """Scores of the authors' earlier tool: max over thresholds of the column means; adaptive means."""
    if not items:
        raise ValueError("summarize_paper_extra: no images")
    out = {
        "maxDic": float(_column_means(items, "dice").max()),
        "maxSen": float(_column_means(items, "sensitivity").max()),
        "maxSpe": float(_column_means(items, "specificity").max()),
        "maxEm": float(_column_means(items, "e_measure").max()),
    }
    for key, field in (
        ("adpDic", "adp_dice"),
        ("adpSen", "adp_sensitivity"),
        ("adpSpe", "adp_specificity"),
        ("adpEm", "adp_e_measure"),
    ):
        out[key] = float(np.nanmean([getattr(item, field) for item in items]))
    out["adpEm"] = clip_unit(out["adpEm"])
    return out
