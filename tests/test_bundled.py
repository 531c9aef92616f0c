"""The bundled default model: registry entry, integrity check, and real accuracy on COVID-SemiSeg test slices."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from infnet.backends import logits_of
from infnet.errors import InfnetError
from infnet.inference import Segmenter
from infnet.io.images import read_gray, read_label
from infnet.models import registry, weights
from infnet.scan.samples import bundled_samples


@pytest.mark.parametrize("name", weights.list_bundled())
def test_registry_entry_is_complete(name):
    entry = weights.bundled_entry(name)
    for key in (
        "name",
        "arch",
        "sha256",
        "input_size",
        "normalisation",
        "training_data",
        "licence",
        "metrics",
        "command",
    ):
        assert key in entry
    assert "non-commercial" in entry["licence"]
    parts = (
        [entry["metrics"][c] for c in ("ggo", "consolidation")] if entry["task"] == "multiclass" else [entry["metrics"]]
    )
    for metrics in parts:
        assert set(metrics["paper"]) >= {"meanDic", "meanSen", "meanSpe", "Sm", "meanEm", "MAE"}
    if entry["task"] == "multiclass":  # its infection prior comes from another bundled model
        assert entry["infection_model"] in weights.list_bundled()
    files = weights.weight_files(entry)
    for item in files:
        assert weights.sha256_file(weights.WEIGHTS_DIR / item["file"]) == item["sha256"]
    if entry["arch"] == "ensemble":  # stored by member: one file each, the entry's digest combines theirs
        assert "file" not in entry and len(files) == entry["config"]["n"]
        assert entry["sha256"] == weights.combined_sha256([f["sha256"] for f in files])
    assert entry["size_bytes"] == sum((weights.WEIGHTS_DIR / f["file"]).stat().st_size for f in files)
    assert (weights.WEIGHTS_DIR / f"{name}.md").is_file()


def test_every_weights_file_belongs_to_a_model():
    """No orphan (e.g. a one-file ensemble left behind after its members were stored apart) ships."""
    used = {f["file"] for name in weights.list_bundled() for f in weights.weight_files(weights.bundled_entry(name))}
    assert {p.name for p in weights.WEIGHTS_DIR.glob("*.safetensors")} == used


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    entry = weights.bundled_entry(weights.DEFAULT_MODEL)
    copy = tmp_path / entry["file"]
    shutil.copyfile(weights.WEIGHTS_DIR / entry["file"], copy)
    with open(copy, "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(InfnetError, match="does not match the registry"):
        registry.load_bundled(weights.DEFAULT_MODEL)
    copy.unlink()
    with pytest.raises(InfnetError, match="bundled weights file missing"):
        registry.load_bundled(weights.DEFAULT_MODEL)


def test_tampered_member_of_an_ensemble_is_refused(tmp_path, monkeypatch):
    """An ensemble stored by member checks every member file; one changed byte in the second stops the load."""
    name = weights.DEFAULT_2D_MODEL
    files = weights.weight_files(weights.bundled_entry(name))
    assert len(files) == 2
    for item in files:
        shutil.copyfile(weights.WEIGHTS_DIR / item["file"], tmp_path / item["file"])
    with open(tmp_path / files[1]["file"], "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(InfnetError, match=f"{files[1]['file']}: sha256 .* does not match the registry"):
        registry.load_bundled(name)


def test_volume_default_is_the_paper_inf_net_and_the_robust_semi_inf_net_stored_once():
    """The volume default's two members are the bundled single models' own files, and its logits are their mean."""
    entry = weights.bundled_entry(weights.DEFAULT_VOLUME_MODEL)
    assert [f["file"] for f in weights.weight_files(entry)] == [
        weights.bundled_entry(n)["file"] for n in (weights.DEFAULT_MODEL, "infnet-effl2-semi-robust-semiseg")
    ]
    x = torch.rand(1, 3, 64, 64)
    pair = registry.load_bundled(weights.DEFAULT_VOLUME_MODEL)
    singles = [registry.load_bundled(n) for n in (weights.DEFAULT_MODEL, "infnet-effl2-semi-robust-semiseg")]
    with torch.no_grad():
        want = sum(logits_of(m, x) for m in singles) / 2
        assert torch.allclose(logits_of(pair, x), want, atol=1e-5)


def test_bundled_model_segments_real_test_slices(semiseg_root):
    """Standard Dice@0.5 on 8 fixed test slices (the full 48-slice figures are in the model card)."""
    seg = Segmenter.from_pretrained(device="cpu")
    test = semiseg_root / "Dataset/TestingSet/LungInfection-Test"
    dices = []
    for stem in ("6", "18", "36", "60", "66", "76", "85", "99"):
        image, gt = read_gray(test / "Imgs" / f"{stem}.jpg"), read_gray(test / "GT" / f"{stem}.png") > 128
        pred = seg.predict(image).astype(bool)
        assert pred.shape == gt.shape
        dices.append(2 * (pred & gt).sum() / max(pred.sum() + gt.sum(), 1))
    assert np.mean(dices) > 0.6, dices  # 0.672 measured here


def test_bundled_multiclass_model_on_real_test_slices(semiseg_root, tmp_path):
    """GGO / consolidation on 8 fixed test slices through `infnet segment --multiclass` (full figures: model card)."""
    import json

    from infnet.cli import main

    test = semiseg_root / "Dataset/TestingSet/MultiClassInfection-Test"
    stems = ("6", "18", "36", "60", "66", "76", "85", "99")
    src = tmp_path / "slices"
    src.mkdir()
    for stem in stems:
        shutil.copyfile(test / "Imgs" / f"{stem}.jpg", src / f"{stem}.jpg")
    out = tmp_path / "out"
    assert main(["segment", str(src), "-o", str(out), "--multiclass", "--quiet", "--no-overlays"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["mask_labels"] == {"1": "ggo", "2": "consolidation"}
    dice = {1: [], 2: []}
    for stem in stems:
        mask = read_label(out / "masks" / f"{stem}.png")  # palette PNG of class indices
        for c, gt_dir in ((1, "GT-1"), (2, "GT-2")):
            pred, gt = mask == c, read_gray(test / gt_dir / f"{stem}.png") > 0
            if gt.any() or pred.any():
                dice[c].append(2 * (pred & gt).sum() / (pred.sum() + gt.sum()))
    assert np.mean(dice[1]) > 0.45 and np.mean(dice[2]) > 0.35, dice  # 0.527 and 0.447 measured here


def test_multiclass_evaluate_cli_reproduces_the_card(semiseg_root, tmp_path, capsys):
    """`infnet multiclass evaluate` on the 48 test slices gives the registry's (model card's) numbers."""
    import json

    from infnet.cli import main

    name = weights.DEFAULT_MULTICLASS_MODEL
    entry = weights.bundled_entry(name)
    assert main(["multiclass", "evaluate", "--model", name, "--out", str(tmp_path / "eval")]) == 0
    assert "consolidation" in capsys.readouterr().out
    got = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for cls in ("ggo", "consolidation"):
        for key in ("meanDic", "Sm", "MAE"):
            assert abs(got[cls]["paper"][key] - entry["metrics"][cls]["paper"][key]) < 2e-3, (cls, key)


def test_segment_multiclass_flag_conflicts_with_model(tmp_path, capsys):
    from infnet.cli import main

    code = main(["segment", "x.png", "-o", str(tmp_path / "o"), "--multiclass", "--model", "infnet-effl2-semiseg"])
    err = capsys.readouterr().err
    assert code == 2 and "either --model or --multiclass" in err and len(err.strip().splitlines()) == 1


def test_infection_model_with_a_missing_model_file_names_the_file(tmp_path, capsys):
    from infnet.cli import main

    img = str(bundled_samples() / "slices" / "semiseg_test_60.jpg")
    missing = str(tmp_path / "nothere.safetensors")
    binary = "applies to multi-class models only; 'infnet-effl2-semiseg' is binary"
    for model, says in ((missing, f"{missing}: model file not found"), ("infnet-effl2-semiseg", binary)):
        code = main(["segment", img, "-o", str(tmp_path / "o"), "--model", model, "--infection-model",
                     "infnet-effl2-semiseg"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_models_that_mark_healthy_lung_say_so_in_the_report():
    """The Semi-Inf-Net models fail the healthy-thorax benchmark (benchmarks/false_positives.py): every report made
    with them carries the registry's caution, also when one is the prior of a multi-class model."""
    from types import SimpleNamespace

    from infnet.scan.cautions import model_cautions

    semi = model_cautions(SimpleNamespace(name="infnet-effl2-semi-semiseg"))
    assert len(semi) == 1 and "2.36 % of the lung" in semi[0] and semi[0].startswith("infnet-effl2-semi-semiseg:")
    assert model_cautions(SimpleNamespace(name="infnet-effl2-semiseg")) == []
    assert model_cautions(SimpleNamespace(name="my.safetensors")) == []
    prior = SimpleNamespace(name="infnet-effl2-semi-ens3-semiseg")
    assert "0.99 %" in model_cautions(SimpleNamespace(name="density-split-multiclass-semiseg", infection=prior))[0]
