"""Output temperature: hand-computed sharpening, the val-set choice, and its effect on the predictors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from infnet.calibration import choose_temperature, sharpen
from infnet.cli import main
from infnet.errors import InfnetError
from infnet.inference import Segmenter
from infnet.models import create_model, save_checkpoint


def test_sharpen_sigmoid_by_hand():
    p = np.array([0.5, 0.75, 0.25, 0.0, 1.0])
    # sigmoid(2 * logit(0.75)) = 0.75^2 / (0.75^2 + 0.25^2) = 0.9
    np.testing.assert_allclose(sharpen(p, 2.0), [0.5, 0.9, 0.1, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(sharpen(p, 1.0), p, atol=1e-7)
    np.testing.assert_allclose(sharpen(sharpen(p, 2.0), 0.5), p, atol=1e-6)  # T then 1/T is the identity
    with pytest.raises(ValueError, match="> 0"):
        sharpen(p, 0.0)


def test_sharpen_softmax_by_hand():
    fg = np.array([[0.5], [0.25]])  # GGO, consolidation; background 0.25
    # squares 0.0625 (bg), 0.25, 0.0625 -> normalised 1/6, 2/3, 1/6
    np.testing.assert_allclose(sharpen(fg, 2.0, axis=0), [[2 / 3], [1 / 6]], atol=1e-6)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 8, 8))
    soft = np.exp(logits) / np.exp(logits).sum(0)
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(0)
    np.testing.assert_allclose(sharpen(soft[1:], 3.0, axis=0), sharp[1:], atol=1e-5)
    assert (sharpen(soft[1:], 3.0, axis=0).argmax(0) == soft[1:].argmax(0)).all()


def test_choose_temperature_prefers_sharp_maps_and_ties_go_low():
    gt = np.zeros((10, 10), bool)
    gt[:, :5] = True
    soft = np.where(gt, 0.7, 0.3)
    soft[0, 0], soft[9, 9] = 0.9, 0.1  # min-max normalisation stretches the rest: thresholds split them
    t, scores = choose_temperature([soft], [gt], grid=(1.0, 4.0))
    # paper protocol: 256 thresholds of the normalised map; T=4 pushes 0.7 -> 0.967 (normalised 0.98)
    assert t == 4.0 and scores[4.0] > scores[1.0]
    hard = gt.astype(np.float64)
    t, scores = choose_temperature([hard], [gt], grid=(1.0, 2.0))
    # hard map: Dice 1 at 255 thresholds, 2*50/(50+100) at t = 0 (every pixel on); the same for each T
    assert t == 1.0 and scores[1.0] == pytest.approx((255 + 2 / 3) / 256) == scores[2.0]
    with pytest.raises(ValueError, match="as many"):
        choose_temperature([soft], [], grid=(1.0,))


def test_choose_temperature_multiclass_averages_classes():
    gt = np.zeros((2, 6, 6), bool)
    gt[0, :3], gt[1, 3:] = True, True
    probs = np.stack([np.where(gt[0], 0.6, 0.2), np.where(gt[1], 0.6, 0.2)])
    t, scores = choose_temperature([probs], [gt], grid=(1.0, 2.0), multiclass=True)
    assert set(scores) == {1.0, 2.0} and t in scores
    assert scores[2.0] >= scores[1.0] > 0.5


@pytest.fixture(scope="module")
def tiny_ckpts(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("infnet-effl0")
    d = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(model, d / "t1.safetensors", extra={"input_size": 64})
    save_checkpoint(model, d / "t3.safetensors", extra={"input_size": 64, "temperature": 3.0})
    return d


def test_segmenter_applies_the_checkpoint_temperature(tiny_ckpts):
    stack = np.random.default_rng(1).integers(0, 255, (2, 40, 48), dtype=np.uint8)
    raw = Segmenter.from_pretrained(tiny_ckpts / "t1.safetensors", device="cpu")
    hot = Segmenter.from_pretrained(tiny_ckpts / "t3.safetensors", device="cpu")
    assert raw.temperature == 1.0 and hot.temperature == 3.0
    p1, p3 = raw.predict_proba(stack), hot.predict_proba(stack)
    np.testing.assert_allclose(p3, sharpen(p1, 3.0), atol=1e-4)
    assert (raw.predict(stack) == hot.predict(stack)).all()  # masks at 0.5 do not move
    override = Segmenter.from_pretrained(tiny_ckpts / "t3.safetensors", device="cpu", temperature=1.0)
    np.testing.assert_allclose(override.predict_proba(stack), p1, atol=1e-6)
    with pytest.raises(InfnetError, match="temperature must be > 0"):
        Segmenter.from_pretrained(tiny_ckpts / "t1.safetensors", device="cpu", temperature=0)


def test_predict_cli_temperature_option(tiny_ckpts, tmp_path, capsys):
    from _synth import make_slices

    imgs, _ = make_slices(tmp_path / "data", n=2, size=(40, 56))
    ckpt = str(tiny_ckpts / "t1.safetensors")
    assert main(["predict", "--model", ckpt, "--input", str(imgs), "--output", str(tmp_path / "a"), "--quiet"]) == 0
    assert "temperature 1" in capsys.readouterr().out
    args = ["predict", "--model", ckpt, "--input", str(imgs), "--output", str(tmp_path / "b"), "--quiet"]
    assert main([*args, "--temperature", "4"]) == 0
    assert "temperature 4" in capsys.readouterr().out
    assert main([*args, "--temperature", "-1"]) != 0
    err = capsys.readouterr().err
    assert "temperature must be > 0" in err and "Traceback" not in err
