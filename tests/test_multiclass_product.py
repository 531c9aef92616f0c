"""Multi-class models in the product: predictor dispatch, `infnet predict`, test evaluation, `infnet segment`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infnet.cli import main
from infnet.errors import InfnetError
from infnet.inference import Segmenter, is_multiclass, load_predictor
from infnet.io.images import read_gray
from infnet.models import create_model, save_checkpoint
from infnet.multiclass.evaluate import evaluate_multiclass
from infnet.multiclass.predict import MultiClassSegmenter
from infnet.scan.preprocess import labels_from_prob
from test_multiclass import make_multiclass

TINY = dict(base_channels=4, fc_channels=8)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads cost more than they give


@pytest.fixture
def models(tmp_path):
    """(multi-class checkpoint, binary infection checkpoint): tiny untrained FCN8s, saved as training would."""
    torch.manual_seed(0)
    mc = tmp_path / "mc.safetensors"
    model = create_model("fcn8s-vgg16", in_chans=4, num_classes=3, **TINY)
    save_checkpoint(model, mc, extra={"task": "multiclass", "input_size": 64, "classes": ["bg", "ggo", "cons"]})
    infection = tmp_path / "infection.safetensors"
    save_checkpoint(create_model("fcn8s-vgg16", **TINY), infection, extra={"input_size": 64})
    return mc, infection


def test_labels_from_prob_binary_and_multiclass():
    binary = np.array([[[0.2, 0.5, 0.9]]])
    assert labels_from_prob(binary).tolist() == [[0, 1, 1]]
    # (GGO, consolidation) probabilities; background = 1 - sum. A pixel is infected when GGO + consolidation
    # >= 0.5 (even if neither alone is), labelled by the larger of the two.
    multi = np.array([[[0.1, 0.3, 0.2, 0.6]], [[0.2, 0.25, 0.4, 0.3]]])
    assert labels_from_prob(multi).tolist() == [[0, 1, 2, 1]]
    assert labels_from_prob(multi, threshold=0.8).tolist() == [[0, 0, 0, 1]]


def test_dispatch_and_errors(models):
    mc, infection = models
    assert is_multiclass(mc) and not is_multiclass(infection) and not is_multiclass(None)
    seg = load_predictor(mc, infection_model=infection)
    assert isinstance(seg, MultiClassSegmenter) and seg.classes == ("ggo", "consolidation")
    assert isinstance(load_predictor(infection), Segmenter)
    with pytest.raises(InfnetError, match="multi-class model"):
        Segmenter.from_pretrained(mc)
    with pytest.raises(InfnetError, match="multi-class models only"):
        load_predictor(infection, infection_model=infection)
    with pytest.raises(InfnetError, match="must be a binary infection model"):
        load_predictor(mc, infection_model=mc)


def test_predict_cli_writes_class_folders(models, tmp_path, capsys):
    mc, infection = models
    d = make_multiclass(tmp_path / "d", n=3)
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(mc), "--infection-model", str(infection), "--input", str(d["images"]),
                 "--output", str(out), "--quiet"]) == 0  # fmt: skip
    assert "pred/{ggo,consolidation}" in capsys.readouterr().out
    for cls in ("ggo", "consolidation"):
        assert sorted(p.name for p in (out / cls).iterdir()) == ["0.png", "1.png", "2.png"]
        assert read_gray(out / cls / "0.png").shape == (64, 72)
    # The same through the multiclass subcommand.
    out2 = tmp_path / "pred2"
    assert main(["multiclass", "predict", "--model", str(mc), "--infection-model", str(infection), "--input",
                 str(d["images"]), "--output", str(out2), "--quiet"]) == 0  # fmt: skip
    assert np.array_equal(read_gray(out / "ggo" / "1.png"), read_gray(out2 / "ggo" / "1.png"))
    # A binary model with --infection-model: one line, exit 2.
    assert main(["predict", "--model", str(infection), "--infection-model", str(infection), "--input",
                 str(d["images"]), "--output", str(tmp_path / "p3"), "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "multi-class models only" in err and len(err.strip().splitlines()) == 1


def test_evaluate_multiclass_scores_each_class(models, tmp_path):
    mc, infection = models
    d = make_multiclass(tmp_path / "d", n=3)
    m = evaluate_multiclass(mc, tmp_path / "eval", infection_model=infection, images=d["images"],
                            gt={"ggo": d["gt1"], "consolidation": d["gt2"]})  # fmt: skip
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for cls in ("ggo", "consolidation"):
        assert m[cls]["n_images"] == 3 and saved[cls]["paper"] == pytest.approx(m[cls]["paper"])
        assert 0 <= m[cls]["paper"]["meanDic"] <= 1 and 0 <= m[cls]["standard"]["dice"] <= 1
        assert (tmp_path / "eval" / f"per_image-{cls}.csv").is_file()
    with pytest.raises(InfnetError, match="missing ground truth folder for: consolidation"):
        evaluate_multiclass(mc, tmp_path / "e2", infection_model=infection, images=d["images"], gt={"ggo": d["gt1"]})


def test_segment_cli_reports_ggo_and_consolidation(models, tmp_path):
    mc, infection = models
    d = make_multiclass(tmp_path / "d", n=2)
    out = tmp_path / "seg"
    assert main(["segment", str(d["images"] / "0.png"), "-o", str(out), "--model", str(mc), "--infection-model",
                 str(infection), "--quiet", "--pixel-spacing", "0.7"]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert set(report["classes"]) == {"ggo", "consolidation"}
    total = sum(report["classes"][c]["area_mm2"]["total"] for c in ("ggo", "consolidation"))
    assert total == pytest.approx(report["infection"]["area_mm2"]["total"], abs=1e-2)


def test_multiclass_temperature_sharpens_softmax_keeps_argmax(models):
    from infnet.calibration import sharpen

    mc, infection = models
    stack = np.random.default_rng(2).integers(0, 255, (2, 40, 48), dtype=np.uint8)
    raw = load_predictor(mc, infection_model=infection)
    hot = load_predictor(mc, infection_model=infection, temperature=5.0)
    assert raw.temperature == 1.0 and hot.temperature == 5.0
    p1, p5 = raw.predict_proba(stack), hot.predict_proba(stack)
    np.testing.assert_allclose(p5, sharpen(p1, 5.0, axis=1), atol=1e-4)
    bg1, bg5 = 1 - p1.sum(1, keepdims=True), 1 - p5.sum(1, keepdims=True)
    same = np.concatenate([bg1, p1], 1).argmax(1) == np.concatenate([bg5, p5], 1).argmax(1)
    assert same.mean() > 0.999  # ties in float32 aside, the most likely class does not change


def test_multiclass_scale_tta_reaches_both_models(models):
    mc, infection = models
    seg = load_predictor(mc, infection_model=infection, tta=True, tta_scales=[0.75, 1.0])
    assert seg.tta and seg.tta_scales == (0.75, 1.0)
    assert seg.infection.tta and seg.infection.tta_scales == (0.75, 1.0)  # the prior gets the same TTA
    stack = np.random.default_rng(5).integers(0, 255, (2, 40, 48), dtype=np.uint8)
    p = seg.predict_proba(stack)
    assert p.shape == (2, 2, 40, 48) and (p >= 0).all() and (p.sum(1) <= 1 + 1e-5).all()
    plain = load_predictor(mc, infection_model=infection)
    assert np.abs(plain.predict_proba(stack) - p).max() > 1e-6  # TTA changes the (near-uniform, untrained) maps


def test_evaluate_with_tta_records_it(models, tmp_path):
    mc, infection = models
    d = make_multiclass(tmp_path / "d", n=2)
    gt = {"ggo": d["gt1"], "consolidation": d["gt2"]}
    m = evaluate_multiclass(mc, tmp_path / "eval", infection_model=infection, images=d["images"], gt=gt, tta=True,
                            tta_scales=[0.75, 1.0])  # fmt: skip
    assert m["tta"] == {"views": "mirror", "scales": [0.75, 1.0]}
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["tta"] == m["tta"]
    plain = evaluate_multiclass(mc, tmp_path / "e2", infection_model=infection, images=d["images"], gt=gt)
    assert plain["tta"] == {"views": "none", "scales": [1.0]}
