"""Training end to end on tiny synthetic data: the loss falls, runs resume exactly, errors are clear, DDP runs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _synth import make_slices
from infnet.cli import main
from infnet.errors import InfnetError
from infnet.models.registry import load_checkpoint
from infnet.training.config import TrainConfig
from infnet.training.trainer import train


def _cfg(imgs, masks, **kw) -> TrainConfig:
    base = dict(
        model="infnet-effl0",
        encoder_weights=None,
        train_images=str(imgs),
        train_masks=str(masks),
        val_images=str(imgs),
        val_masks=str(masks),
        epochs=2,
        batch_size=3,
        lr=1e-3,
        train_size=64,
        rates=[1.0],
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_lr_decays_once_not_compounding():
    cfg = TrainConfig(lr=1e-4, decay_epoch=50, decay_rate=0.1)
    assert cfg.lr_at(0) == cfg.lr_at(49) == 1e-4
    assert cfg.lr_at(50) == pytest.approx(1e-5) and cfg.lr_at(99) == pytest.approx(1e-5)


def test_loss_falls_and_run_dir_is_complete(tmp_path):
    imgs, masks = make_slices(tmp_path / "data", n=6)
    run = tmp_path / "run"
    train(_cfg(imgs, masks, epochs=6, test_images=str(imgs), test_masks=str(masks)), run, progress=False)
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < 0.8 * losses[0]
    assert json.loads((run / "config.json").read_text())["seed"] == 0
    for name in ("best.safetensors", "last.safetensors", "state.pt"):
        assert (run / name).is_file()
    # Both checkpoints say which epoch they hold and its validation Dice (the final epoch's too).
    last = load_checkpoint(run / "last.safetensors").checkpoint_meta
    assert last["epoch"] == 6 and last["val_dice"] == pytest.approx(float(rows[-1]["val_dice"]), abs=1e-5)
    best = load_checkpoint(run / "best.safetensors").checkpoint_meta
    assert best["val_dice"] == pytest.approx(max(float(r["val_dice"]) for r in rows), abs=1e-5)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(metrics["paper"]) == {"meanDic", "meanSen", "meanSpe", "Sm", "meanEm", "MAE"}
    assert 0.0 <= metrics["standard"]["dice"] <= 1.0
    assert len(list((run / "eval" / "pred").glob("*.png"))) == 6


def test_resume_continues_exactly(tmp_path):
    imgs, masks = make_slices(tmp_path / "data", n=4)
    straight, split = tmp_path / "a", tmp_path / "b"
    train(_cfg(imgs, masks, epochs=2, augment=True), straight, progress=False)
    train(_cfg(imgs, masks, epochs=1, augment=True), split, progress=False)
    train(_cfg(imgs, masks, epochs=2, augment=True), split, resume=True, progress=False)
    a, b = load_file(str(straight / "last.safetensors")), load_file(str(split / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in _rows(straight)] == [r["train_loss"] for r in _rows(split)]


def test_kill_between_checkpoint_and_state_resumes_consistently(tmp_path):
    import shutil

    from infnet.models.weights import sha256_file

    imgs, masks = make_slices(tmp_path / "data", n=4)
    straight, split = tmp_path / "a", tmp_path / "b"
    train(_cfg(imgs, masks, epochs=2), straight, progress=False)
    train(_cfg(imgs, masks, epochs=1), split, progress=False)
    state = torch.load(split / "state.pt", weights_only=True)
    assert state["checkpoint_sha256"] == sha256_file(split / "last.safetensors")
    # Killed after epoch 2's last.safetensors and before its state.pt: the weights state.pt belongs to are kept
    # as prev.safetensors until the state is written, so resuming reruns epoch 2 from the matching pair.
    os.replace(split / "last.safetensors", split / "prev.safetensors")
    shutil.copy(straight / "last.safetensors", split / "last.safetensors")
    train(_cfg(imgs, masks, epochs=2), split, resume=True, progress=False)
    a, b = load_file(str(straight / "last.safetensors")), load_file(str(split / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (split / "prev.safetensors").exists()
    # No checkpoint matching state.pt: refused rather than resumed from mismatched weights.
    (split / "last.safetensors").write_bytes(b"damaged")
    with pytest.raises(InfnetError, match="no checkpoint in .* matches its sha256"):
        train(_cfg(imgs, masks, epochs=3), split, resume=True, progress=False)


def test_run_dir_protection_and_resume_errors(tmp_path):
    imgs, masks = make_slices(tmp_path / "data", n=3)
    run = tmp_path / "run"
    train(_cfg(imgs, masks, epochs=1), run, progress=False)
    with pytest.raises(InfnetError, match="already holds a run"):
        train(_cfg(imgs, masks, epochs=1), run, progress=False)
    with pytest.raises(InfnetError, match="is for model 'infnet-effl0', not 'infnet-effl2'"):
        train(_cfg(imgs, masks, model="infnet-effl2"), run, resume=True, progress=False)
    with pytest.raises(InfnetError, match="nothing to resume"):
        train(_cfg(imgs, masks), tmp_path / "empty", resume=True, progress=False)


def _cli_train(out, imgs, masks, *extra: str) -> int:
    """`infnet train` on a tiny folder pair with a small untrained model."""
    return main(["train", "--out", str(out), "--model", "infnet-effl0", "--encoder-weights", "none",
                 "--train-images", str(imgs), "--train-masks", str(masks), "--val-split", "none", "--quiet",
                 *extra])  # fmt: skip


def test_train_cli_bad_input(tmp_path, capsys):
    imgs, masks = make_slices(tmp_path / "data", n=2)
    (masks / "1.png").unlink()
    code = _cli_train(tmp_path / "r", imgs, masks)
    err = capsys.readouterr().err
    assert code == 2 and "1.png: no mask with stem '1'" in err and "Traceback" not in err
    code = _cli_train(tmp_path / "r", imgs, masks, "--model", "nope")
    assert code == 2 and "unknown model 'nope'" in capsys.readouterr().err
    code = main(["train", "--out", str(tmp_path / "r"), "--train-images", str(imgs)])
    assert code == 2 and "without --train-masks" in capsys.readouterr().err
    empty = tmp_path / "no-masks"
    empty.mkdir()
    code = _cli_train(tmp_path / "r", imgs, empty)
    err = capsys.readouterr().err
    assert code == 2 and "0.png: no mask with stem '0'" in err


def test_ddp_two_processes_on_cpu(tmp_path):
    imgs, masks = make_slices(tmp_path / "data", n=4)
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "infnet",
        "train",
        "--out",
        str(run),
        "--model",
        "infnet-effl0",
        "--encoder-weights",
        "none",
        "--train-images",
        str(imgs),
        "--train-masks",
        str(masks),
        "--val-images",
        str(imgs),
        "--val-masks",
        str(masks),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--train-size",
        "64",
        "--rates",
        "1.0",
        "--device",
        "cpu",
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "best.safetensors").is_file() and len(_rows(run)) == 1


def test_init_checkpoint_starts_from_given_weights(tmp_path):
    imgs, masks = make_slices(tmp_path / "data", n=3)
    first = tmp_path / "first"
    train(_cfg(imgs, masks, epochs=1), first, progress=False)
    second = tmp_path / "second"
    cfg = _cfg(imgs, masks, epochs=1, lr=0.0, init_checkpoint=str(first / "last.safetensors"))
    train(cfg, second, progress=False)
    a, b = load_file(str(first / "last.safetensors")), load_file(str(second / "last.safetensors"))
    # lr 0: weights unchanged from the init checkpoint (BatchNorm running stats still update)
    assert all(torch.equal(a[k], b[k]) for k in a if "running" not in k and "num_batches" not in k)
    with pytest.raises(InfnetError, match="is a 'infnet-effl0', expected 'infnet-effl0-no1'"):
        train(
            _cfg(imgs, masks, model="infnet-effl0-no1", init_checkpoint=str(first / "last.safetensors")),
            tmp_path / "third",
            progress=False,
        )


def test_run_without_validation_says_best_is_last(tmp_path, capsys):
    imgs, masks = make_slices(tmp_path / "data", n=3)
    run = tmp_path / "run"
    train(_cfg(imgs, masks, epochs=1, val_images=None, val_masks=None), run, progress=True)
    assert "no validation set" in capsys.readouterr().err
    a, b = load_file(str(run / "best.safetensors")), load_file(str(run / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
