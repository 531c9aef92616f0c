"""Ensembles: mean logits of members, checkpoint round trip, `infnet ensemble` end to end and its bad input."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import torch

from _synth import make_slices
from infnet.cli import main
from infnet.errors import InfnetError
from infnet.inference import Segmenter
from infnet.models import create_model, load_checkpoint, save_checkpoint
from infnet.models.ensemble import ENSEMBLE, build_ensemble
from infnet.training.ensemble_run import write_ensemble_run


def _tiny(path, seed: int, name: str = "infnet-effl0", size: int = 64, rows: int = 0):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, path, extra={"input_size": size, "epoch": 1, "val_dice": 0.5})
    if rows:
        lines = ["epoch,loss,val_dice,seconds"] + [f"{e + 1},1.0,0.5,{10 * (seed + 1)}" for e in range(rows)]
        (path.parent / "metrics.csv").write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    return [_tiny(root / f"s{i}" / "last.safetensors", seed=i, rows=2) for i in range(2)]


def test_ensemble_output_is_the_mean_of_member_logits(members, one_thread):
    model, extra = build_ensemble(members)
    assert extra["input_size"] == 64 and extra["members"] == [str(p) for p in members]
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        outs = [load_checkpoint(p)(x)["out"] for p in members]
        got = model(x)["out"]
    assert got.shape == (2, 1, 64, 64)
    assert not torch.allclose(outs[0], outs[1])  # the members really differ
    assert torch.allclose(got, (outs[0] + outs[1]) / 2, atol=1e-5)


def test_ensemble_run_round_trip_predicts_like_its_members(members, tmp_path, one_thread):
    ckpt = write_ensemble_run(members, tmp_path / "ens")
    meta = load_checkpoint(ckpt).checkpoint_meta
    assert meta["arch"] == ENSEMBLE and meta["config"]["n"] == 2 and meta["config"]["member_arch"] == "infnet-effl0"
    assert meta["input_size"] == 64 and meta["epoch"] is None
    cfg = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert cfg["model"] == ENSEMBLE and cfg["train_size"] == 64 and len(cfg["members"]) == 2
    with open(tmp_path / "ens" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    # both members' epochs, so training time adds up: 2 x 10 s + 2 x 20 s
    assert [r["member"] for r in rows] == ["0", "0", "1", "1"] and sum(float(r["seconds"]) for r in rows) == 60
    slices = np.random.default_rng(0).integers(0, 255, (2, 50, 70), dtype=np.uint8)
    seg = Segmenter.from_pretrained(ckpt, device="cpu")
    singles = [Segmenter.from_pretrained(p, device="cpu") for p in members]
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    expect = 1 / (1 + np.exp(-(logit(singles[0].predict_proba(slices)) + logit(singles[1].predict_proba(slices))) / 2))
    np.testing.assert_allclose(seg.predict_proba(slices), expect, atol=1e-4)


def test_ensemble_cli_end_to_end(members, tmp_path, capsys, one_thread):
    out = tmp_path / "ens"
    assert main(["ensemble", "--members", *map(str, members), "--out", str(out)]) == 0
    assert "ensemble of 2" in capsys.readouterr().out
    imgs, _ = make_slices(tmp_path / "data", n=2)
    pred = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--model",
                str(out / "best.safetensors"),
                "--input",
                str(imgs),
                "--output",
                str(pred),
                "--quiet",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in pred.iterdir()) == ["0.png", "1.png"]
    # an existing run folder is not overwritten
    before = (out / "best.safetensors").read_bytes()
    assert main(["ensemble", "--members", *map(str, members), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "best.safetensors").read_bytes() == before


def test_ensemble_bad_input(members, tmp_path, capsys):
    other = _tiny(tmp_path / "o" / "last.safetensors", seed=3, name="infnet-effl0-no1")
    small = _tiny(tmp_path / "s" / "last.safetensors", seed=4, size=96)
    cases = [
        ([members[0]], "at least 2"),
        ([members[0], other], "one architecture"),
        ([members[0], small], "input_size 96"),
        ([members[0], members[1].parent], "a folder"),
        ([members[0], tmp_path / "missing.safetensors"], "not found"),
    ]
    for i, (paths, msg) in enumerate(cases):
        code = main(["ensemble", "--members", *map(str, paths), "--out", str(tmp_path / f"e{i}")])
        err = capsys.readouterr().err
        assert code == 2 and msg in err and err.count("\n") == 1, (msg, err)
        assert not (tmp_path / f"e{i}").exists()
    nested = write_ensemble_run(members, tmp_path / "ens")
    with pytest.raises(InfnetError, match="already an ensemble"):
        build_ensemble([nested, members[0]])


def test_ensemble_is_not_trained(tmp_path, capsys):
    assert main(["train", "--model", ENSEMBLE, "--out", str(tmp_path / "r"), "--epochs", "1"]) == 2
    assert "infnet ensemble" in capsys.readouterr().err
    model = create_model(ENSEMBLE, member_arch="infnet-effl0", n=2).train()
    with pytest.raises(InfnetError, match="not trained"):
        model(torch.zeros(1, 3, 64, 64))
    with pytest.raises(InfnetError, match="registered single model"):
        create_model(ENSEMBLE, member_arch=ENSEMBLE)


def test_bundled_seed_ensemble_holds_the_bundled_seed_1_model():
    """The bundled 3-seed ensemble's second member is the seed-1 run that ships alone as infnet-effl2-semi-semiseg:
    stored once, as that model's file, and loaded into the ensemble unchanged."""
    from infnet.models import weights
    from infnet.models.registry import load_bundled

    ens = weights.bundled_entry("infnet-effl2-semi-ens3-semiseg")
    assert ens["arch"] == ENSEMBLE and ens["config"]["n"] == 3 and ens["config"]["member_seeds"] == [0, 1, 2]
    single_file = weights.bundled_entry("infnet-effl2-semi-semiseg")["file"]
    assert [f["file"] == single_file for f in weights.weight_files(ens)] == [False, True, False]
    model, single = load_bundled(ens["name"]), load_bundled("infnet-effl2-semi-semiseg")
    assert model.checkpoint_meta["input_size"] == 448 and model.checkpoint_meta["temperature"] == ens["temperature"]
    for key, value in single.state_dict().items():
        assert torch.equal(model.members[1].state_dict()[key], value), key
    assert not torch.equal(model.members[0].state_dict()[key], value)


def test_bundled_ensemble_is_stored_by_member_and_loads_like_one_file(members, tmp_path, monkeypatch, one_thread):
    """scripts/bundle_model.py stores an ensemble one file per member; a member that ships alone is not copied."""
    import importlib.util
    import shutil
    from pathlib import Path

    from infnet.models import registry, weights

    spec = importlib.util.spec_from_file_location(
        "bundle_model", Path(__file__).parents[1] / "scripts" / "bundle_model.py"
    )
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "scripts"))
    bundle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundle)
    monkeypatch.setattr(bundle, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    shutil.copyfile(members[1], tmp_path / "single.safetensors")  # member 2 also ships alone
    single = {"name": "single", "arch": "infnet-effl0", "file": "single.safetensors"}
    single["sha256"] = weights.sha256_file(tmp_path / "single.safetensors")
    model, extra = build_ensemble(members)
    save_checkpoint(model, tmp_path / "ens.safetensors", extra={**extra, "temperature": 2.0})

    stored = bundle.store_members("ens", tmp_path / "ens.safetensors", [single])
    files = [f["file"] for f in stored["member_files"]]
    assert files == ["ens.member1.safetensors", "single.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)  # the one-file ensemble is gone
    assert stored["sha256"] == weights.combined_sha256([f["sha256"] for f in stored["member_files"]])
    entry = {"name": "ens", "arch": ENSEMBLE, "input_size": 64, "temperature": 2.0, **stored}
    monkeypatch.setattr(weights, "_registry", lambda: {"ens": entry, "single": single})
    loaded = registry.load_bundled("ens")
    assert loaded.checkpoint_meta["input_size"] == 64 and loaded.checkpoint_meta["temperature"] == 2.0
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(x)["out"], model(x)["out"])

    # Re-bundling the single model first gives the ensemble its own byte-identical copy of the old weights.
    entries, holders = bundle.detach_members("single", [entry, single])
    assert holders == ["ens"] and entries[1] == single
    assert [f["file"] for f in entries[0]["member_files"]] == ["ens.member1.safetensors", "ens.member2.safetensors"]
    assert entries[0]["sha256"] == entry["sha256"] and entry["member_files"][1]["file"] == "single.safetensors"
    (tmp_path / "single.safetensors").write_bytes(b"new weights")  # what the re-bundle then writes
    monkeypatch.setattr(weights, "_registry", lambda: {"ens": entries[0]})
    with torch.inference_mode():
        assert torch.equal(registry.load_bundled("ens")(x)["out"], model(x)["out"])
