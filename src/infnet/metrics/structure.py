"""Structure-measure (Fan et al., ICCV 2017) and Enhanced-alignment measure (Fan et al., IJCAI 2018).

Written from the papers and the behaviour of the authors' MATLAB evaluation code (``StructureMeasure.m``,
``S_object.m``, ``S_region.m``, ``Enhancedmeasure.m``), including their special cases. All functions take
2D arrays of the same shape (H x W): a prediction (float in [0, 1], or a boolean map for the E-measure) and a
boolean ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = float(np.finfo(np.float64).eps)  # MATLAB's eps


def clip_unit(value):
    """Scores clipped to [0, 1] (float or array): the authors' n/(n-1) normalisation lets a perfect E-measure
    reach n/(n-1)."""
    out = np.clip(value, 0.0, 1.0)
    return float(out) if np.ndim(out) == 0 else out


def _check_pair(pred: np.ndarray, gt: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim != 2 or gt.ndim != 2:
        raise ValueError(f"{name}: expected 2D arrays, got shapes {pred.shape} and {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"{name}: shape mismatch {pred.shape} vs {gt.shape}")
    if pred.size == 0:
        raise ValueError(f"{name}: empty arrays")
    return pred, gt.astype(bool, copy=False)


def _check_unit_range(pred: np.ndarray, name: str) -> np.ndarray:
    pred = pred.astype(np.float64, copy=False)
    if pred.min() < 0 or pred.max() > 1:
        raise ValueError(f"{name}: prediction must lie in [0, 1]")
    return pred


def _round_half_up(value: float) -> int:
    """MATLAB ``round`` for non-negative values (half away from zero), unlike numpy's half-to-even."""
    return int(np.floor(value + 0.5))


# ----------------------------------------------------------------------------------------------- S-measure


def _object_score(values: np.ndarray) -> float:
    """Object-level similarity of the foreground values: 2x / (x^2 + 1 + sigma_x + eps); 0 for no pixels."""
    if values.size == 0:
        return 0.0
    x = float(values.mean())
    sigma = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return 2.0 * x / (x * x + 1.0 + sigma + EPS)


def s_object(pred: np.ndarray, gt: np.ndarray) -> float:
    """Object-aware part of the S-measure: u * O_FG + (1 - u) * O_BG, u = foreground fraction of ``gt``."""
    pred, gt = _check_pair(pred, gt, "s_object")
    pred = _check_unit_range(pred, "s_object")
    u = float(gt.mean())
    return u * _object_score(pred[gt]) + (1.0 - u) * _object_score(1.0 - pred[~gt])


def _ssim_region(pred: np.ndarray, gt: np.ndarray) -> float:
    """The S-measure's SSIM-like region score (whole-region statistics, (N-1)-normalised moments).

    An empty region scores 0 (its weight is 0 as well; MATLAB would produce NaN there).
    """
    n = pred.size
    if n == 0:
        return 0.0
    g = gt.astype(np.float64)
    x = float(pred.mean())
    y = float(g.mean())
    dx = pred - x
    dy = g - y
    denom = n - 1 + EPS
    sigma_x2 = float((dx * dx).sum()) / denom
    sigma_y2 = float((dy * dy).sum()) / denom
    sigma_xy = float((dx * dy).sum()) / denom
    alpha = 4.0 * x * y * sigma_xy
    beta = (x * x + y * y) * (sigma_x2 + sigma_y2)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1.0 if beta == 0 else 0.0


def s_region(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region-aware part of the S-measure: the image is split in 4 at the GT centroid (MATLAB rounding).

    ``gt`` must contain foreground (the S-measure handles empty GT before calling this).
    """
    pred, gt = _check_pair(pred, gt, "s_region")
    pred = _check_unit_range(pred, "s_region")
    rows, cols = gt.shape
    total = float(gt.sum())
    if total == 0:
        cx, cy = _round_half_up(cols / 2), _round_half_up(rows / 2)
    else:
        cx = _round_half_up(float((gt.sum(axis=0) * np.arange(1, cols + 1)).sum()) / total)
        cy = _round_half_up(float((gt.sum(axis=1) * np.arange(1, rows + 1)).sum()) / total)
    area = float(rows * cols)
    w1 = cx * cy / area
    w2 = (cols - cx) * cy / area
    w3 = cx * (rows - cy) / area
    w4 = 1.0 - w1 - w2 - w3
    quads = [
        (w1, np.s_[:cy, :cx]),
        (w2, np.s_[:cy, cx:]),
        (w3, np.s_[cy:, :cx]),
        (w4, np.s_[cy:, cx:]),
    ]
    return float(sum(w * _ssim_region(pred[sl], gt[sl]) for w, sl in quads))


def s_measure(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> float:
    """Structure-measure S = alpha * S_object + (1 - alpha) * S_region, in [0, 1].

    ``pred``: HxW float in [0, 1]; ``gt``: HxW boolean. Special cases (as the authors' code):
    empty GT -> 1 - mean(pred); all-foreground GT -> mean(pred).
    """
    pred, gt = _check_pair(pred, gt, "s_measure")
    pred = _check_unit_range(pred, "s_measure")
    y = float(gt.mean())
    if y == 0:
        return 1.0 - float(pred.mean())
    if y == 1:
        return float(pred.mean())
    return alpha * s_object(pred, gt) + (1.0 - alpha) * s_region(pred, gt)


# ----------------------------------------------------------------------------------------------- E-measure


def e_measure_from_counts(tp, fp, n_fg: int, n: int) -> np.ndarray:
    """Enhanced-alignment measure of binary maps given only their confusion counts (vectorised).

    The enhanced alignment of a pixel depends only on its (prediction, GT) pair of values and on the two maps'
    means, so the score is a weighted sum over the four pixel classes. ``tp``/``fp``: counts (scalars or
    arrays, e.g. one per threshold); ``n_fg``: GT foreground pixels; ``n``: all pixels. Special cases: empty
    GT -> share of predicted background; all-foreground GT -> share of predicted foreground. Normalised by
    ``n - 1 + eps`` as in the authors' code (by 1 for a single-pixel image).
    """
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    if n_fg == 0:
        total = n - (tp + fp)
    elif n_fg == n:
        total = tp + fp
    else:
        fn = n_fg - tp
        tn = (n - n_fg) - fp
        mu_fm = (tp + fp) / n
        mu_gt = n_fg / n

        def enhanced(fm_value: float, gt_value: float) -> np.ndarray:
            a = fm_value - mu_fm
            b = gt_value - mu_gt
            align = 2.0 * a * b / (a * a + b * b + EPS)
            return (align + 1.0) ** 2 / 4.0

        total = tp * enhanced(1.0, 1.0) + fp * enhanced(1.0, 0.0) + fn * enhanced(0.0, 1.0)
        total = total + tn * enhanced(0.0, 0.0)
    denom = n - 1 + EPS if n > 1 else 1.0
    return total / denom


def e_measure(fm: np.ndarray, gt: np.ndarray) -> float:
    """E-measure of a binary foreground map ``fm`` (HxW, bool or 0/1) against boolean ``gt`` (HxW).

    1 for a perfect match (up to the n/(n-1) normalisation of the authors' code); empty GT and empty
    prediction give 1 (n/(n-1)); empty GT with everything predicted gives 0.
    """
    fm, gt = _check_pair(fm, gt, "e_measure")
    fm = fm.astype(bool)
    tp = int(np.count_nonzero(fm & gt))
    fp = int(np.count_nonzero(fm & ~gt))
    return float(e_measure_from_counts(tp, fp, int(gt.sum()), gt.size))


def matlab_thresholds(n: int = 256) -> np.ndarray:
    """The thresholds of MATLAB's ``1:-1/(n-1):0`` bit for bit (first half from 1, second half from 0)."""
    d = -1.0 / (n - 1)
    steps = n - 1
    out = np.empty(n, dtype=np.float64)
    half = steps // 2
    k = np.arange(half + 1, dtype=np.float64)
    out[: half + 1] = 1.0 + k * d
    out[steps - np.arange(half + 1)] = 0.0 - k * d
    if steps % 2 == 0:
        out[half] = 0.5
    return out


THRESHOLDS = matlab_thresholds(256)


def count_above(values_sorted: np.ndarray, thresholds: np.ndarray, strict: bool) -> np.ndarray:
    """How many of the ascending ``values_sorted`` are >= (or > when ``strict``) each threshold."""
    side = "right" if strict else "left"
    return values_sorted.size - np.searchsorted(values_sorted, thresholds, side=side)


def e_measure_curve(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """E-measure of ``pred > t`` for each threshold t (the authors binarise strictly), without a pixel loop.

    ``pred``: HxW float in [0, 1]; ``gt``: HxW bool. Returns one score per threshold.
    """
    pred, gt = _check_pair(pred, gt, "e_measure_curve")
    pred = pred.astype(np.float64, copy=False)
    fg = np.sort(pred[gt], axis=None)
    bg = np.sort(pred[~gt], axis=None)
    tp = count_above(fg, thresholds, strict=True)
    fp = count_above(bg, thresholds, strict=True)
    return e_measure_from_counts(tp, fp, fg.size, gt.size)


def adaptive_threshold(pred: np.ndarray) -> float:
    """The adaptive threshold of the authors' tools: min(2 * mean(pred), 1)."""
    return min(2.0 * float(np.mean(pred)), 1.0)


@dataclass(frozen=True)
class EMeasureScores:
    """Per-image E-measure summary: mean and max over the 256 thresholds, and at the adaptive threshold."""

    mean: float
    adaptive: float
    max: float


def e_measure_scores(pred: np.ndarray, gt: np.ndarray) -> EMeasureScores:
    """Mean / adaptive / max E-measure of a float map ``pred`` (HxW, [0, 1]) against boolean ``gt``.

    All use strict binarisation as the authors' code: ``pred > t`` over :data:`THRESHOLDS` for mean and max,
    ``pred > min(2 * mean(pred), 1)`` for the adaptive score. Each threshold's score is clipped to [0, 1]
    before the mean and max.
    """
    pred, gt = _check_pair(pred, gt, "e_measure_scores")
    pred = _check_unit_range(pred, "e_measure_scores")
    curve = e_measure_curve(pred, gt)
    adp = e_measure(pred > adaptive_threshold(pred), gt)
    curve = clip_unit(curve)
    return EMeasureScores(mean=float(curve.mean()), adaptive=clip_unit(adp), max=float(curve.max()))
