"""Multi-class: labels and priors, training (resumable, exact), prediction with a prior model, CLI errors."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from _synth import make_slices
from infnet.cli import main
from infnet.errors import InfnetError
from infnet.io.images import read_gray
from infnet.models import create_model, save_checkpoint
from infnet.models.registry import read_checkpoint_meta
from infnet.multiclass import MultiClassConfig, MultiClassSegmenter, read_class_label, read_prior, train_multiclass

PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads cost more than they give


def _save_palette(path: Path, label: np.ndarray) -> None:
    im = Image.fromarray(label.astype(np.uint8), mode="P")
    im.putpalette(PALETTE)
    im.save(path)


def make_multiclass(folder: Path, n: int = 4) -> dict[str, Path]:
    """Synthetic slices with a disc: left half GGO (1), right half consolidation (2); priors; GT-1 / GT-2."""
    imgs, masks = make_slices(folder, n=n)
    dirs = {k: folder / k for k in ("labels", "priors", "gt1", "gt2")}
    for d in dirs.values():
        d.mkdir()
    for m in sorted(masks.iterdir()):
        disc = read_gray(m) > 127
        label = np.zeros(disc.shape, np.uint8)
        cols = np.nonzero(disc.any(axis=0))[0]
        mid = (cols.min() + cols.max()) // 2 if len(cols) else 0
        label[disc] = 1
        label[:, mid:][disc[:, mid:]] = 2
        _save_palette(dirs["labels"] / m.name, label)
        Image.fromarray((disc * 255).astype(np.uint8)).save(dirs["priors"] / m.name)
        Image.fromarray(label == 1).save(dirs["gt1"] / m.name)
        Image.fromarray(label == 2).save(dirs["gt2"] / m.name)
    return {"images": imgs, **dirs}


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def _train_args(d: dict, out: Path, *extra: str) -> list[str]:
    return [
        "multiclass", "train", "--out", str(out), "--encoder-weights", "none", "--quiet",
        "--train-images", str(d["images"]), "--train-labels", str(d["labels"]), "--train-priors", str(d["priors"]),
        "--val-images", str(d["images"]), "--val-labels", str(d["labels"]), "--val-priors", str(d["priors"]),
        "--epochs", "1", "--batch-size", "2", "--train-size", "64", *extra,
    ]  # fmt: skip


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_labels_and_priors(tmp_path):
    d = make_multiclass(tmp_path / "d", n=2)
    label = read_class_label(d["labels"] / "0.png")
    assert set(np.unique(label)) == {0, 1, 2}
    bad = tmp_path / "bad.png"
    _save_palette(bad, np.full((8, 8), 3))
    with pytest.raises(InfnetError, match=r"bad\.png: unknown class values 3"):
        read_class_label(bad)
    with pytest.raises(InfnetError, match=r"0\.png: prior size 72x64 differs from its image 10x10"):
        read_prior(d["priors"] / "0.png", (10, 10))


def test_gt_prior_rate_mixes_given_and_gt_priors(tmp_path):
    from infnet.multiclass.data import MultiClassDataset

    d = make_multiclass(tmp_path / "d", n=2)
    for p in d["priors"].iterdir():  # a "model" prior that found nothing: distinguishable from the GT prior
        Image.fromarray(np.zeros(read_gray(p).shape, np.uint8)).save(p)
    kw = dict(image_dir=d["images"], label_dir=d["labels"], prior_dir=d["priors"], size=32)
    gt_used = lambda ds: [bool((ds[0][0][3] > 0).any()) for _ in range(200)]  # noqa: E731
    torch.manual_seed(0)
    assert not any(gt_used(MultiClassDataset(**kw)))  # default 0: always the given prior
    assert all(gt_used(MultiClassDataset(**kw, gt_prior_rate=1.0)))
    torch.manual_seed(0)
    share = np.mean(gt_used(MultiClassDataset(**kw, gt_prior_rate=0.5)))
    assert 0.4 < share < 0.6
    with pytest.raises(InfnetError, match=r"gt_prior_rate must be in \[0, 1\], got 1.5"):
        MultiClassDataset(**kw, gt_prior_rate=1.5)
    with pytest.raises(InfnetError, match=r"rotate must be >= 0 degrees, got -5"):
        MultiClassDataset(**kw, rotate=-5)


def test_real_dataset_labels(semiseg_root):
    from infnet.data.semiseg import SPLITS

    split = SPLITS["multiclass-train"]
    for stem in ("0", "1"):
        label = read_class_label(next((semiseg_root / split.mask_dir).glob(f"{stem}.png")))
        prior = read_prior(
            semiseg_root / "Dataset/TrainingSet/MultiClassInfection-Train/Prior" / f"{stem}.png", label.shape
        )
        assert set(np.unique(label)) <= {0, 1, 2}
        assert np.array_equal(prior > 0, label > 0)  # the prior is the infection GT


def test_train_resume_predict_evaluate(tmp_path, capsys):
    d = make_multiclass(tmp_path / "d")
    run = tmp_path / "run"
    assert main(_train_args(d, run, "--model", "fcn8s-effl2", "--epochs", "2")) == 0
    with open(run / "metrics.csv") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]
    meta = read_checkpoint_meta(run / "best.safetensors")
    assert meta["task"] == "multiclass" and meta["input_size"] == 64 and meta["config"]["in_chans"] == 4

    # Resume continues exactly: 2 + 1 epochs equal 3 straight epochs.
    assert main([*_train_args(d, run, "--model", "fcn8s-effl2", "--epochs", "3"), "--resume"]) == 0
    straight = tmp_path / "straight"
    assert main(_train_args(d, straight, "--model", "fcn8s-effl2", "--epochs", "3")) == 0
    a, b = load_file(str(run / "last.safetensors")), load_file(str(straight / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # --resume without --epochs keeps the run's own count (not the CLI default of 100).
    args = _train_args(d, run, "--model", "fcn8s-effl2", "--resume")
    del args[args.index("--epochs") : args.index("--epochs") + 2]
    assert main(args) == 0
    assert json.loads((run / "config.json").read_text())["epochs"] == 3
    with open(run / "metrics.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 3

    # Prediction: a (tiny, untrained) binary infection model gives the prior.
    infection = tmp_path / "infection.safetensors"
    save_checkpoint(create_model("fcn8s-vgg16", base_channels=4, fc_channels=8), infection)
    seg = MultiClassSegmenter.from_pretrained(run / "best.safetensors", infection_model=infection)
    slices = np.stack([read_gray(p) for p in sorted(d["images"].iterdir())[:2]])
    probs = seg.predict_proba(slices)
    assert probs.shape == (2, 2, 64, 72) and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.sum(axis=1).max() <= 1 + 1e-5
    out = tmp_path / "pred"
    before = _digest(d["images"])
    assert main(["multiclass", "predict", "--model", str(run / "best.safetensors"), "--infection-model",
                 str(infection), "--input", str(d["images"]), "--output", str(out), "--quiet"]) == 0  # fmt: skip
    assert _digest(d["images"]) == before
    for cls in ("ggo", "consolidation"):
        files = sorted(p.name for p in (out / cls).iterdir())
        assert files == sorted(p.name for p in d["images"].iterdir())
        assert read_gray(out / cls / "0.png").shape == (64, 72)
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out / "ggo"), "--gt", str(d["gt1"])]) == 0
    assert main(["evaluate", "--pred", str(out / "consolidation"), "--gt", str(d["gt2"])]) == 0


def test_rotation_keeps_input_and_label_aligned():
    from infnet.multiclass.data import rotate_pair

    y = torch.zeros(8, 8, dtype=torch.long)
    y[1:3, 5:7] = 2  # consolidation in the upper right
    x = torch.stack([y.float()] * 4)
    x0, y0 = rotate_pair(x, y, 0.0)
    assert torch.equal(y0, y) and torch.allclose(x0, x)
    x90, y90 = rotate_pair(x, y, 90.0)
    assert any(torch.equal(y90, torch.rot90(y, k, (0, 1))) for k in (1, -1))  # an exact quarter turn
    assert torch.allclose(x90[3], y90.float(), atol=1e-4)  # the prior channel turned with the label
    assert y90.dtype == torch.long and set(y90.unique().tolist()) == {0, 2}


def test_soft_prior_training_and_inference(tmp_path):
    from infnet.multiclass.data import MultiClassDataset, to_input

    d = make_multiclass(tmp_path / "d", n=2)
    for p in d["priors"].iterdir():  # a model's probability map: grey levels, not 0/255
        Image.fromarray(np.full(read_gray(p).shape, 64, np.uint8)).save(p)
    kw = dict(image_dir=d["images"], label_dir=d["labels"], prior_dir=d["priors"], size=32)
    assert torch.allclose(MultiClassDataset(**kw, soft_prior=True)[0][0][3], torch.tensor(64 / 255 * 2 - 1))
    assert torch.all(MultiClassDataset(**kw)[0][0][3] == -1.0)  # binarised at > 127
    gray = np.zeros((8, 8), np.uint8)
    assert torch.all(to_input(gray, np.full((8, 8), 255, np.uint8), None, (0.5,) * 3, (0.5,) * 3, soft=True)[3] == 1)

    run = tmp_path / "run"
    assert main(_train_args(d, run, "--model", "fcn8s-effl2", "--soft-prior")) == 0
    assert read_checkpoint_meta(run / "last.safetensors")["soft_prior"] is True
    infection = tmp_path / "infection.safetensors"
    save_checkpoint(create_model("fcn8s-vgg16", base_channels=4, fc_channels=8), infection)
    seg = MultiClassSegmenter.from_pretrained(run / "last.safetensors", infection_model=infection)
    assert seg.soft_prior and seg.infection.temperature == 1.0  # from the checkpoint; raw maps as in training
    image = read_gray(d["images"] / "0.png")
    prob = seg.infection.predict_proba([image])[0][0]
    assert np.array_equal(seg.priors([image])[0], np.clip(prob * 255 + 0.5, 0, 255).astype(np.uint8))
    assert seg.predict_proba([image])[0].shape == (2, 64, 72)
    hard = MultiClassSegmenter.from_pretrained(run / "last.safetensors", infection_model=infection, soft_prior=False)
    assert set(np.unique(hard.priors([image])[0])) <= {0, 255}


def test_unknown_class_value_cli(tmp_path, capsys):
    d = make_multiclass(tmp_path / "d", n=2)
    _save_palette(d["labels"] / "1.png", np.full((64, 72), 5))
    before = _digest(tmp_path / "d")
    assert main(_train_args(d, tmp_path / "run", "--model", "fcn8s-effl2")) == 2
    assert "1.png: unknown class values 5" in _one_error_line(capsys)
    assert _digest(tmp_path / "d") == before
    assert not (tmp_path / "run" / "state.pt").exists()


def test_bad_prior_rate_cli(tmp_path, capsys):
    d = make_multiclass(tmp_path / "d", n=2)
    assert main(_train_args(d, tmp_path / "run", "--model", "fcn8s-effl2", "--gt-prior-rate", "2")) == 2
    assert "gt_prior_rate must be in [0, 1], got 2.0" in _one_error_line(capsys)
    assert not (tmp_path / "run" / "state.pt").exists()


def test_prior_of_wrong_size_cli(tmp_path, capsys):
    d = make_multiclass(tmp_path / "d", n=2)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(d["priors"] / "0.png")
    before = _digest(tmp_path / "d")
    assert main(_train_args(d, tmp_path / "run", "--model", "fcn8s-effl2")) == 2
    err = _one_error_line(capsys)
    assert f"{d['priors'] / '0.png'}: prior size 30x30 differs from its image 72x64" in err
    assert _digest(tmp_path / "d") == before


def test_resume_refuses_other_model_and_binary_runs(tmp_path, capsys):
    d = make_multiclass(tmp_path / "d", n=2)
    run = tmp_path / "run"
    assert main(_train_args(d, run, "--model", "fcn8s-effl2")) == 0
    before = _digest(run)
    capsys.readouterr()
    assert main([*_train_args(d, run, "--model", "unet-effl2"), "--resume"]) == 2
    assert "is for model 'fcn8s-effl2', not 'unet-effl2'" in _one_error_line(capsys)
    assert main(_train_args(d, run, "--model", "fcn8s-effl2")) == 2  # occupied without --resume
    assert "already holds a run" in _one_error_line(capsys)
    assert _digest(run) == before
    # A binary trainer run directory is not a multi-class one.
    binary = tmp_path / "binary"
    (binary).mkdir()
    (binary / "config.json").write_text('{"model": "infnet-effl2", "epochs": 1}')
    (binary / "state.pt").write_bytes(b"")
    assert main([*_train_args(d, binary, "--model", "fcn8s-effl2"), "--resume"]) == 2
    assert "not a multi-class run directory" in _one_error_line(capsys)
    # Inf-Net itself cannot be a multi-class model.
    assert main(_train_args(d, tmp_path / "r2", "--model", "infnet-effl0")) == 2
    assert "cannot do multi-class segmentation" in _one_error_line(capsys)


def test_config_defaults_match_paper_recipe():
    cfg = MultiClassConfig()
    assert (cfg.train_size, cfg.lr, cfg.task) == (352, 1e-4, "multiclass")
    with pytest.raises(InfnetError, match="nothing to resume"):
        train_multiclass(cfg, Path("/nonexistent-run-dir"), resume=True)


def test_presentation_keeps_slice_label_and_prior_aligned(semiseg_root, tmp_path):
    """Random presentations and the fixed validation views move the label and the prior with the slice."""
    from infnet.data.presentation import VALIDATION_VIEWS, PresentationAugment
    from infnet.data.semiseg import SPLITS
    from infnet.multiclass.data import MultiClassDataset

    split = SPLITS["multiclass-train"]
    kw = dict(image_dir=semiseg_root / split.image_dir, label_dir=semiseg_root / split.mask_dir, stems=["0", "1"],
              size=96)  # fmt: skip
    plain = MultiClassDataset(**kw)
    shown = MultiClassDataset(**kw, presentation=PresentationAugment())
    torch.manual_seed(0)
    for i in (0, 1, 0, 1):
        x, y = shown[i]
        assert set(torch.unique(y).tolist()) <= {0, 1, 2}
        prior = x[3] > 0  # the prior here is the GT infection mask: it must cover the labelled pixels
        # Up to the edges, where the prior's bilinear and the label's nearest resize differ (the plain dataset
        # agrees at 0.95-0.97 on these slices; a prior not turned with its label: about 0.6).
        assert ((y > 0) == prior).float().mean() > 0.94
    for view in VALIDATION_VIEWS:
        v = MultiClassDataset(**kw, view=view)
        x, y = v[0]
        assert ((y > 0) == (x[3] > 0)).float().mean() > 0.94
        if view.name == "native":  # the native view is the slice as it is
            assert torch.allclose(x, plain[0][0]) and torch.equal(y, plain[0][1])


def test_presentation_run_validates_over_views(tmp_path):
    d = make_multiclass(tmp_path / "d")
    run = tmp_path / "run"
    assert main(_train_args(d, run, "--model", "fcn8s-effl2", "--presentation", "--window-extremes", "0.5")) == 0
    cfg = MultiClassConfig.load(run / "config.json")
    assert cfg.presentation and cfg.window_extremes == 0.5
    with open(run / "metrics.csv") as fh:
        assert 0 <= float(next(csv.DictReader(fh))["val_dice"]) <= 1


def test_init_checkpoint_fine_tunes_from_given_weights(tmp_path, capsys):
    d = make_multiclass(tmp_path / "d", n=2)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(_train_args(d, first)) == 0
    assert main(_train_args(d, second, "--lr", "0", "--init-checkpoint", str(first / "last.safetensors"))) == 0
    assert MultiClassConfig.load(second / "config.json").init_checkpoint == str(first / "last.safetensors")
    a, b = load_file(str(first / "last.safetensors")), load_file(str(second / "last.safetensors"))
    # lr 0: the weights are the init checkpoint's (BatchNorm running statistics still update)
    assert all(torch.equal(a[k], b[k]) for k in a if "running" not in k and "num_batches" not in k)
    capsys.readouterr()
    assert main(_train_args(d, tmp_path / "third", "--init-checkpoint", str(tmp_path / "nope.safetensors"))) != 0
    assert "nope.safetensors" in _one_error_line(capsys)
