"""Hand-computed cases for every metric (tiny arrays), including empty GT and empty prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infnet.metrics import (
    PAPER_KEYS,
    STANDARD_KEYS,
    THRESHOLDS,
    binarize_prediction,
    confusion,
    dice,
    e_measure,
    e_measure_curve,
    e_measure_scores,
    hd95,
    iou,
    mae,
    matlab_thresholds,
    minmax_normalize,
    paper_image_metrics,
    precision,
    s_measure,
    sensitivity,
    specificity,
    standard_image_metrics,
    summarize_paper,
    summarize_pooled,
    summarize_standard,
)
from infnet.metrics.standard import surface
from infnet.metrics.structure import _round_half_up, e_measure_from_counts, s_object, s_region

EPS = np.finfo(np.float64).eps
G1 = np.array([[1, 0], [0, 0]], dtype=bool)  # one foreground pixel in a 2x2 image


# ------------------------------------------------------------------------------------------------ S-measure


def test_s_measure_empty_gt_is_one_minus_mean_prediction():
    pred = np.array([[0.2, 0.4], [0.6, 0.8]])
    assert s_measure(pred, np.zeros((2, 2), bool)) == pytest.approx(0.5)


def test_s_measure_full_gt_is_mean_prediction():
    pred = np.array([[0.1, 0.3], [0.5, 0.7]])
    assert s_measure(pred, np.ones((2, 2), bool)) == pytest.approx(0.4)


def test_s_measure_perfect_binary_prediction_is_one():
    gt = np.zeros((6, 7), bool)
    gt[1:4, 2:6] = True
    assert s_measure(gt.astype(float), gt) == pytest.approx(1.0, abs=1e-12)


def test_s_measure_hand_computed_2x2():
    # S_object: fg [0.5] -> 2*.5/(.25+1) = 0.8; bg 1-[0,0,0] -> 1; u = .25 -> 0.95.
    # S_region: centroid (1, 1) -> four 1-pixel regions, all with alpha = beta = 0 -> 1 each -> 1.
    pred = np.array([[0.5, 0.0], [0.0, 0.0]])
    assert s_object(pred, G1) == pytest.approx(0.95)
    assert s_region(pred, G1) == pytest.approx(1.0)
    assert s_measure(pred, G1) == pytest.approx(0.975)


def test_s_measure_hand_computed_row_with_empty_regions():
    # GT [1 0 0 0], pred [.8 .2 0 .4]: centroid X = Y = 1 -> regions LT (1 px), RT (3 px), LB/RB empty.
    gt = np.array([[1, 0, 0, 0]], bool)
    pred = np.array([[0.8, 0.2, 0.0, 0.4]])
    # O_FG = 1.6 / 1.64; background 1 - pred = [.8, 1, .6]: mean .8, std (N-1) .2 -> 1.6 / 1.84.
    obj = 0.25 * 1.6 / 1.64 + 0.75 * 1.6 / 1.84
    # LT: alpha = beta = 0 -> 1; RT: GT all 0 -> alpha 0, beta > 0 -> 0; empty regions weigh 0.
    region = 0.25 * 1.0 + 0.75 * 0.0
    assert s_object(pred, gt) == pytest.approx(obj)
    assert s_region(pred, gt) == pytest.approx(region)
    assert s_measure(pred, gt) == pytest.approx(0.5 * obj + 0.5 * region)


def test_matlab_rounding_of_the_centroid():
    assert _round_half_up(2.5) == 3 and _round_half_up(1.5) == 2 and _round_half_up(2.49) == 2


def test_s_measure_rejects_bad_input():
    with pytest.raises(ValueError):
        s_measure(np.full((2, 2), 1.5), G1)
    with pytest.raises(ValueError):
        s_measure(np.zeros((2, 3)), G1)
    with pytest.raises(ValueError):
        s_measure(np.zeros(4), np.zeros(4, bool))


# ------------------------------------------------------------------------------------------------ E-measure


def test_e_measure_perfect_match_uses_n_minus_one_normalisation():
    # every pixel has enhanced alignment 1 -> 4 / (4 - 1)
    assert e_measure(G1, G1) == pytest.approx(4 / 3)


def test_e_measure_empty_gt():
    empty = np.zeros((2, 2), bool)
    assert e_measure(empty, empty) == pytest.approx(4 / 3)  # 1 - FM summed over 4 pixels
    assert e_measure(np.ones((2, 2), bool), empty) == pytest.approx(0.0)
    assert e_measure(G1, empty) == pytest.approx(1.0)  # 3 / 3


def test_e_measure_full_gt():
    full = np.ones((2, 2), bool)
    assert e_measure(full, full) == pytest.approx(4 / 3)
    assert e_measure(G1, full) == pytest.approx(1 / 3)


def test_e_measure_empty_prediction():
    # mu_FM = 0 -> the FM deviation is 0 everywhere -> alignment 0 -> enhanced 1/4 per pixel -> 1 / 3
    assert e_measure(np.zeros((2, 2), bool), G1) == pytest.approx(1 / 3)


def test_e_measure_hand_computed_mixed():
    fm = np.array([[1, 1], [0, 0]], bool)
    # mu_FM = .5, mu_GT = .25. TP pixel: a=.5, b=.75 -> align 12/13 -> (25/13)^2/4 = 625/676.
    # FP pixel: a=.5, b=-.25 -> align -.8 -> .01. TN pixels: a=-.5, b=-.25 -> align .8 -> .81 each.
    expected = (625 / 676 + 0.01 + 2 * 0.81) / 3
    assert e_measure(fm, G1) == pytest.approx(expected)


def _naive_e_measure(fm: np.ndarray, gt: np.ndarray) -> float:
    """Per-pixel transcription of the definition, to check the count-based shortcut."""
    f, g = fm.astype(float), gt.astype(float)
    if g.sum() == 0:
        m = 1 - f
    elif g.sum() == g.size:
        m = f
    else:
        a, b = f - f.mean(), g - g.mean()
        m = ((2 * a * b / (a * a + b * b + EPS)) + 1) ** 2 / 4
    return m.sum() / (g.size - 1 + EPS)


def test_e_measure_counts_match_pixelwise_definition():
    rng = np.random.default_rng(0)
    for _ in range(20):
        gt = rng.random((9, 11)) < rng.random()
        fm = rng.random((9, 11)) < rng.random()
        assert e_measure(fm, gt) == pytest.approx(_naive_e_measure(fm, gt), rel=1e-12)


def test_e_measure_curve_equals_thresholdwise_loop():
    rng = np.random.default_rng(1)
    gt = rng.random((12, 10)) < 0.3
    pred = np.round(rng.random((12, 10)) * 255) / 255
    curve = e_measure_curve(pred, gt)
    loop = [e_measure(pred > t, gt) for t in THRESHOLDS]
    np.testing.assert_allclose(curve, loop, rtol=1e-12)


def test_e_measure_scores_mean_adaptive_max():
    pred = np.array([[1.0, 0.0], [0.0, 0.0]])
    scores = e_measure_scores(pred, G1)
    # t = 1: nothing > 1 -> 1/3; every other threshold reproduces the GT -> 4/3, clipped to 1.
    assert scores.mean == pytest.approx((1 / 3 + 255 * 1.0) / 256)
    assert scores.max == 1.0
    # adaptive threshold min(2 * .25, 1) = .5; pred > .5 is the GT (4/3, clipped).
    assert scores.adaptive == 1.0


def test_e_measure_from_counts_vectorised():
    out = e_measure_from_counts(np.array([0, 1]), np.array([0, 0]), 1, 4)
    np.testing.assert_allclose(out, [1 / 3, 4 / 3])


def test_matlab_thresholds():
    t = matlab_thresholds(256)
    assert t.shape == (256,) and t[0] == 1.0 and t[-1] == 0.0
    assert np.all(np.diff(t) < 0)
    np.testing.assert_allclose(t, np.linspace(1, 0, 256), atol=1e-15)
    np.testing.assert_array_equal(THRESHOLDS, t)


# --------------------------------------------------------------------------------------- paper protocol


def test_minmax_normalize_like_matlab():
    pred = np.array([[51, 102], [153, 204]], np.uint8)
    np.testing.assert_allclose(minmax_normalize(pred), [[0, 1 / 3], [2 / 3, 1]], atol=1e-15)
    const = np.full((2, 2), 7, np.uint8)  # mapminmax passes a constant row through
    np.testing.assert_allclose(minmax_normalize(const), 7 / 255)
    np.testing.assert_array_equal(minmax_normalize(G1), G1.astype(float))


def test_mae():
    assert mae(np.array([[1.0, 0.5], [0.0, 0.25]]), G1) == pytest.approx(0.75 / 4)
    assert mae(G1.astype(float), G1) == 0.0


def test_paper_perfect_prediction():
    m = paper_image_metrics(np.array([[255, 0], [0, 0]], np.uint8), np.array([[255, 0], [0, 0]], np.uint8))
    # t in (0, 1]: P = GT -> Dice = Sen = Spe = 1; t = 0: P = all -> Dice 2/5, Sen 1, Spe 0.
    np.testing.assert_allclose(m.dice[:-1], 1.0)
    assert m.dice[-1] == pytest.approx(0.4)
    assert m.dice.mean() == pytest.approx((255 + 0.4) / 256)
    assert m.sensitivity.mean() == pytest.approx(1.0)
    assert m.specificity.mean() == pytest.approx(255 / 256)
    assert m.e_measure.mean() == pytest.approx((1 / 3 + 255 * 4 / 3) / 256)
    assert m.s_measure == pytest.approx(1.0)
    assert m.mae == 0.0


def test_paper_empty_gt_scores_zero_overlap():
    pred = np.array([[255, 0], [0, 0]], np.uint8)
    m = paper_image_metrics(pred, np.zeros((2, 2), np.uint8))
    # TP = 0 at every threshold -> Dice = Sen = Spe = 0 (the authors' rule)
    assert not m.dice.any() and not m.sensitivity.any() and not m.specificity.any()
    # E: t = 1 -> nothing predicted -> 4/3; else one false positive -> 3/3.
    assert m.e_measure.mean() == pytest.approx((4 / 3 + 255 * 1.0) / 256)
    assert m.s_measure == pytest.approx(0.75)  # 1 - mean(pred)
    assert m.mae == pytest.approx(0.25)


def test_paper_empty_prediction():
    m = paper_image_metrics(np.zeros((2, 2), np.uint8), G1)
    # constant map stays 0: only t = 0 predicts (everything): Dice 2/5, Sen 1, Spe 0.
    assert m.dice.mean() == pytest.approx(0.4 / 256)
    assert m.sensitivity.mean() == pytest.approx(1 / 256)
    assert m.specificity.mean() == 0.0
    assert m.e_measure.mean() == pytest.approx(1 / 3)  # pred > t is empty at every t
    # S_object: fg [0] -> 0, bg [1,1,1] -> 1 -> .75; S_region 1 -> S = .875
    assert m.s_measure == pytest.approx(0.875)
    assert m.mae == pytest.approx(0.25)


def test_paper_bool_prediction_equals_0_255_prediction():
    a = paper_image_metrics(G1, G1)
    b = paper_image_metrics(G1.astype(np.uint8) * 255, G1.astype(np.uint8) * 255)
    np.testing.assert_array_equal(a.dice, b.dice)
    np.testing.assert_array_equal(a.e_measure, b.e_measure)


def test_summarize_paper_means_over_thresholds_of_means_over_images():
    a = paper_image_metrics(np.array([[255, 0], [0, 0]], np.uint8), G1)
    b = paper_image_metrics(np.zeros((2, 2), np.uint8), G1)
    s = summarize_paper([a, b])
    assert tuple(s) == PAPER_KEYS
    assert s["meanDic"] == pytest.approx(((255 + 0.4) / 256 + 0.4 / 256) / 2)
    assert s["Sm"] == pytest.approx((1.0 + 0.875) / 2)
    assert s["MAE"] == pytest.approx(0.125)


# ------------------------------------------------------------------------------------ standard protocol


def test_standard_overlap_scores_hand_computed():
    pred = np.array([[1, 1, 0, 0]], bool)
    gt = np.array([[1, 0, 0, 0]], bool)
    c = confusion(pred, gt)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 0, 2)
    assert dice(pred, gt) == pytest.approx(2 / 3)
    assert iou(pred, gt) == pytest.approx(1 / 2)
    assert sensitivity(pred, gt) == pytest.approx(1.0)
    assert specificity(pred, gt) == pytest.approx(2 / 3)
    assert precision(pred, gt) == pytest.approx(1 / 2)


def test_standard_both_empty():
    z = np.zeros((3, 3), bool)
    m = standard_image_metrics(z, z)
    assert m.dice == 1.0 and m.iou == 1.0 and m.specificity == 1.0 and m.hd95 == 0.0
    assert math.isnan(m.sensitivity) and math.isnan(m.precision)


def test_standard_empty_gt():
    pred = np.zeros((3, 3), bool)
    pred[0, 0] = True
    m = standard_image_metrics(pred, np.zeros((3, 3), bool))
    assert m.dice == 0.0 and m.iou == 0.0 and m.precision == 0.0
    assert m.specificity == pytest.approx(8 / 9)
    assert math.isnan(m.sensitivity) and math.isnan(m.hd95)


def test_standard_empty_prediction():
    gt = np.zeros((3, 3), bool)
    gt[1, 1] = True
    m = standard_image_metrics(np.zeros((3, 3), np.uint8), gt)
    assert m.dice == 0.0 and m.iou == 0.0 and m.sensitivity == 0.0 and m.specificity == 1.0
    assert math.isnan(m.precision) and math.isnan(m.hd95)


def test_binarize_prediction_at_half():
    pred = np.array([[127, 128, 0, 255]], np.uint8)
    np.testing.assert_array_equal(binarize_prediction(pred), [[False, True, False, True]])
    np.testing.assert_array_equal(binarize_prediction(np.array([[0.49, 0.5]])), [[False, True]])
    with pytest.raises(ValueError):
        binarize_prediction(np.array([[1.5]]))


def test_surface_of_a_square():
    m = np.zeros((5, 5), bool)
    m[1:4, 1:4] = True
    s = surface(m)
    assert s.sum() == 8 and not s[2, 2]
    assert surface(np.ones((2, 2), bool)).all()  # pixels on the image border are surface


def test_hd95_hand_computed():
    a = np.zeros((5, 5), bool)
    b = np.zeros((5, 5), bool)
    a[2, 2] = b[2, 4] = True
    assert hd95(a, b) == pytest.approx(2.0)
    c = np.zeros((5, 5), bool)
    c[3, 3] = True
    assert hd95(a, c) == pytest.approx(math.sqrt(2))
    # squares shifted by one column: directed distances are eight 0s and eight 1s -> 95th percentile 1
    sq1 = np.zeros((5, 6), bool)
    sq2 = np.zeros((5, 6), bool)
    sq1[1:4, 1:4] = True
    sq2[1:4, 2:5] = True
    assert hd95(sq1, sq2) == pytest.approx(1.0)


def test_hd95_percentile_interpolates():
    gt = np.zeros((1, 10), bool)
    pred = np.zeros((1, 10), bool)
    gt[0, 0] = True
    pred[0, 0] = pred[0, 3] = True
    # distances: gt->pred [0], pred->gt [0, 3]; 95th percentile of [0, 0, 3] = 0 + 0.9 * 3
    assert hd95(pred, gt) == pytest.approx(2.7)
    assert hd95(gt, pred) == pytest.approx(2.7)


def test_hd95_empty_conventions():
    z = np.zeros((4, 4), bool)
    one = z.copy()
    one[1, 1] = True
    assert hd95(z, z) == 0.0
    assert math.isnan(hd95(one, z)) and math.isnan(hd95(z, one))


def test_summarize_standard_skips_nan_and_pools_counts():
    gt1 = np.array([[1, 0, 0, 0]], bool)
    pred1 = np.array([[1, 1, 0, 0]], bool)  # TP 1, FP 1 -> dice 2/3, hd95 1
    gt2 = np.array([[0, 0, 1, 1]], bool)
    pred2 = np.zeros((1, 4), bool)  # FN 2 -> dice 0, hd95 NaN, precision NaN
    items = [standard_image_metrics(pred1, gt1), standard_image_metrics(pred2, gt2)]
    s = summarize_standard(items)
    assert tuple(s) == STANDARD_KEYS
    assert s["dice"] == pytest.approx(1 / 3)
    assert s["precision"] == pytest.approx(0.5)  # NaN of image 2 left out
    assert s["hd95"] == pytest.approx(items[0].hd95)
    assert s["dice_pooled"] == pytest.approx(2 / (2 + 1 + 2))  # TP 1, FP 1, FN 2
    pooled = summarize_pooled(items)
    assert pooled["iou"] == pytest.approx(1 / 4)
    assert pooled["sensitivity"] == pytest.approx(1 / 3)


def test_hd95_matches_brute_force_surface_distances():
    rng = np.random.default_rng(2)
    for _ in range(5):
        a = rng.random((20, 17)) < 0.2
        b = rng.random((20, 17)) < 0.2
        pa, pb = np.argwhere(surface(a)), np.argwhere(surface(b))
        d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
        expected = np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), 95)
        assert hd95(a, b) == pytest.approx(expected)
