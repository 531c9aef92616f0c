"""Density split: blur and opening, the split itself, the logistic fit, `infnet multiclass fit-density`, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infnet.cli import main
from infnet.errors import InfnetError
from infnet.models import create_model, save_checkpoint
from infnet.models.density import DensitySplit, DensitySplitConfig, binary_opening, gaussian_blur
from infnet.models.registry import load_checkpoint, read_checkpoint_meta
from infnet.multiclass.data import to_input
from infnet.multiclass.density import DensityFitConfig, fit_density_split, fit_logistic
from infnet.multiclass.predict import MultiClassSegmenter
from test_multiclass import _one_error_line, _save_palette

pytestmark = pytest.mark.usefixtures("one_thread")

GGO_GREY, CONS_GREY = 110, 200


def make_density_set(folder: Path, n: int = 3, size: int = 48, cons: bool = True) -> dict[str, Path]:
    """Slices with a square lesion: left part GGO (grey 110), right part consolidation (grey 200); background 40."""
    rng = np.random.default_rng(0)
    dirs = {k: folder / k for k in ("images", "labels")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for i in range(n):
        img = np.full((size, size), 40.0) + rng.normal(0, 3, (size, size))
        label = np.zeros((size, size), np.uint8)
        a, b, mid = 10 + i, size - 10, size // 2 + i
        label[a:b, a:b] = 1
        img[a:b, a:b] = GGO_GREY
        if cons:
            label[a:b, mid:b] = 2
            img[a:b, mid:b] = CONS_GREY
        img += rng.normal(0, 3, (size, size))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(dirs["images"] / f"{i}.png")
        _save_palette(dirs["labels"] / f"{i}.png", label)
    return dirs


def test_blur_keeps_constants_and_mass():
    flat = torch.full((1, 1, 9, 11), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    spike = torch.zeros(1, 1, 31, 31)
    spike[..., 15, 15] = 1.0
    out = gaussian_blur(spike, 1.5)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)  # far from the border nothing is lost
    assert out[..., 15, 15].item() == out.max().item()
    # A kernel wider than the image still works (padding clamped to the image).
    assert gaussian_blur(torch.rand(1, 1, 3, 4), 8.0).shape == (1, 1, 3, 4)


def test_opening_removes_thin_lines_keeps_blocks():
    m = torch.zeros(1, 1, 20, 20)
    m[..., 2, :] = 1.0  # a one-pixel line (a vessel)
    m[..., 8:15, 8:15] = 1.0  # a 7x7 block
    out = binary_opening(m, 1)
    assert out[..., 2, :].sum() == 0
    assert torch.equal(out[..., 8:15, 8:15], torch.ones(1, 1, 7, 7)) and out.sum() == 49
    assert torch.equal(binary_opening(m, 0), m)


def _threshold_model(t: float, opening: int = 0) -> DensitySplit:
    """A split on the grey level alone: consolidation where grey > t."""
    model = DensitySplit(DensitySplitConfig(sigmas=[1.0], opening=opening))
    with torch.no_grad():
        model.weight.copy_(torch.tensor([1.0, 0.0]))
        model.bias.fill_(-t)
    return model


def test_split_inside_the_prior_only():
    grey = np.zeros((8, 8), np.uint8)
    grey[:, 4:] = 230  # right half dense
    prior = np.zeros((8, 8), np.uint8)
    prior[2:6, :] = 255  # infected band across both halves
    model = _threshold_model(0.5)
    out = model(to_input(grey, prior, None, model.mean, model.std)[None])["out"]
    p = torch.softmax(out, dim=1)[0]
    assert p.shape == (3, 8, 8) and torch.allclose(p.sum(0), torch.ones(8, 8))
    labels = p.argmax(0).numpy()
    expected = np.zeros((8, 8), int)
    expected[2:6, :4], expected[2:6, 4:] = 1, 2
    assert (labels == expected).all()
    assert p[0, 0, 0].item() > 0.999 and p[1, 3, 0].item() > 0.999 and p[2, 3, 7].item() > 0.999


def test_fit_logistic_finds_the_boundary():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4000, 1, generator=g)
    y = (x[:, 0] > 0.7).float()
    w, b, loss = fit_logistic(x, y, l2=0.0)
    assert -b.item() / w.item() == pytest.approx(0.7, abs=0.02)
    assert loss < 0.05
    # One class only still gives finite numbers (the L2 term keeps the optimum finite).
    w, b, _ = fit_logistic(x, torch.zeros(4000))
    assert torch.isfinite(w).all() and torch.isfinite(b).all()


def test_fit_density_cli_predicts_and_stores_run(tmp_path, capsys):
    d = make_density_set(tmp_path / "d")
    out = tmp_path / "run"
    args = ["multiclass", "fit-density", "--out", str(out), "--train-images", str(d["images"]), "--train-labels",
            str(d["labels"]), "--val-split", "none", "--sigmas", "1", "2", "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "best.safetensors", "metrics.csv", "fit.json"}
    fit = json.loads((out / "fit.json").read_text())
    assert fit["features"] == ["grey", "blur sigma 1", "blur sigma 2"] and len(fit["weight"]) == 3
    assert fit["openings"]["0"]["ggo"] > 0.95 and fit["openings"]["0"]["consolidation"] > 0.95
    meta = read_checkpoint_meta(out / "best.safetensors")
    assert meta["arch"] == "density-split" and meta["task"] == "multiclass" and meta["input_size"] == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 0
    # The checkpoint is a multi-class model like any other: given the GT infection as its prior it splits it.
    model = load_checkpoint(out / "best.safetensors")
    img = np.array(Image.open(d["images"] / "1.png"))
    label = np.array(Image.open(d["labels"] / "1.png"))
    x = to_input(img, np.where(label > 0, 255, 0).astype(np.uint8), None, model.mean, model.std)[None]
    pred = model(x)["out"].argmax(1)[0].numpy()
    assert (pred == label).mean() > 0.98
    # Refuses to fit over an existing run, with one line.
    assert main(args) == 2
    assert "already holds a run" in _one_error_line(capsys)


def test_predictor_runs_density_split_at_each_slice_size(tmp_path):
    """MultiClassSegmenter feeds input_size 0 models each slice at its own size, one at a time."""
    d = make_density_set(tmp_path / "d", n=2)
    fit_density_split(DensityFitConfig(train_images=str(d["images"]), train_labels=str(d["labels"]), val_split=None,
                                       sigmas=[1.0]), tmp_path / "run", progress=False)  # fmt: skip
    model = load_checkpoint(tmp_path / "run" / "best.safetensors")
    infection = tmp_path / "infection.safetensors"
    save_checkpoint(create_model("fcn8s-vgg16", base_channels=4, fc_channels=8), infection, extra={"input_size": 64})
    seg = MultiClassSegmenter.from_pretrained(tmp_path / "run" / "best.safetensors", infection_model=infection)
    assert seg.input_size == 0
    slices = [np.array(Image.open(d["images"] / "0.png")), np.zeros((30, 41), np.uint8)]
    seg.priors = lambda s: [np.full(x.shape, 255, np.uint8) for x in s]  # everything infected
    out = seg.predict_proba(slices)
    assert [o.shape for o in out] == [(2, 48, 48), (2, 30, 41)]
    assert np.allclose(out[0].sum(0), 1.0, atol=1e-3)  # all infected: GGO + consolidation = 1
    assert out[0][1][20, 30] > 0.99 and out[0][0][20, 15] > 0.99  # dense right part, faint left part
    assert model.config.opening in (0, 1, 2, 3)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sigmas", "0"], "blur sigmas must be positive"),
        (["--openings", "-1"], "openings must be numbers of 3x3 steps >= 0"),
        (["--samples-per-image", "0"], "samples per image must be >= 1"),
    ],
)
def test_fit_density_bad_options(tmp_path, capsys, extra, message):
    d = make_density_set(tmp_path / "d", n=1)
    args = ["multiclass", "fit-density", "--out", str(tmp_path / "run"), "--train-images", str(d["images"]),
            "--train-labels", str(d["labels"]), "--val-split", "none", "--quiet", *extra]  # fmt: skip
    assert main(args) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_fit_density_needs_both_classes(tmp_path, capsys):
    d = make_density_set(tmp_path / "d", n=2, cons=False)
    args = ["multiclass", "fit-density", "--out", str(tmp_path / "run"), "--train-images", str(d["images"]),
            "--train-labels", str(d["labels"]), "--val-split", "none", "--quiet"]  # fmt: skip
    assert main(args) == 2
    assert "hold no consolidation" in _one_error_line(capsys)
    with pytest.raises(InfnetError, match="hold no consolidation"):
        fit_density_split(DensityFitConfig(train_images=str(d["images"]), train_labels=str(d["labels"]),
                                           val_split=None), tmp_path / "run2", progress=False)  # fmt: skip


def test_fit_density_on_the_real_training_split(semiseg_root, tmp_path):
    """On the 45 COVID-SemiSeg training slices the fitted split separates GGO from consolidation by density."""
    cfg = DensityFitConfig(data=str(semiseg_root), samples_per_image=1000, openings=[0, 2])
    fit_density_split(cfg, tmp_path / "run", progress=False)
    fit = json.loads((tmp_path / "run" / "fit.json").read_text())
    assert fit["pixels"] > 30000 and 0.2 < fit["consolidation_share"] < 0.5
    assert sum(fit["weight"]) > 1.0  # denser (brighter) means consolidation
    assert fit["openings"]["2"]["ggo"] > 0.75 and fit["openings"]["2"]["consolidation"] > 0.45
    assert fit["opening"] == 2 and fit["val"]["ggo"] > 0.6


@pytest.mark.parametrize("command", [["train"], ["multiclass", "train"]])
def test_density_split_is_not_trained_by_the_trainers(tmp_path, capsys, command):
    assert main([*command, "--model", "density-split", "--out", str(tmp_path / "run")]) == 2
    assert "infnet multiclass fit-density" in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_fit_at_a_fixed_size_is_recorded_and_used(tmp_path):
    """--size S fits on S x S inputs; the checkpoint says so and the predictor resizes to it like for networks."""
    d = make_density_set(tmp_path / "d", n=2)
    cfg = DensityFitConfig(train_images=str(d["images"]), train_labels=str(d["labels"]), val_split=None, size=32)
    path = fit_density_split(cfg, tmp_path / "run", progress=False)
    assert read_checkpoint_meta(path)["input_size"] == 32
    infection = tmp_path / "infection.safetensors"
    save_checkpoint(create_model("fcn8s-vgg16", base_channels=4, fc_channels=8), infection, extra={"input_size": 64})
    seg = MultiClassSegmenter.from_pretrained(path, infection_model=infection)
    seg.priors = lambda s: [np.full(x.shape, 255, np.uint8) for x in s]
    out = seg.predict_proba(np.stack([np.array(Image.open(d["images"] / "0.png"))] * 2))
    assert seg.input_size == 32 and out.shape == (2, 2, 48, 48)
    assert out[0, 1, 20, 30] > 0.9 and out[0, 0, 20, 15] > 0.9


def test_fit_on_pairs_with_the_grey_level_alone(tmp_path):
    """NumPy pairs in, a fitted model out; no blur at all is a valid feature set (one weight)."""
    from infnet.multiclass.density import fit_on_pairs

    d = make_density_set(tmp_path / "d", n=2)
    pairs = [(np.array(Image.open(d["images"] / f"{i}.png")), np.array(Image.open(d["labels"] / f"{i}.png")))
             for i in range(2)]  # fmt: skip
    model, fit = fit_on_pairs(pairs, sigmas=[], openings=[0, 1])
    assert fit["features"] == ["grey"] and model.weight.shape == (1,)
    assert GGO_GREY < fit["boundary_grey"] < CONS_GREY  # the boundary lies between the two tissue greys
    assert fit["openings"]["0"]["ggo"] > 0.95 and fit["opening"] in (0, 1)
