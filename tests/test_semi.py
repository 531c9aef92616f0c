"""Semi-Inf-Net: rounds, manifest, pseudo-labels, resume after a kill, published labels, budget, CLI errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import infnet.training.trainer as trainer
from _synth import make_slices
from infnet.cli import build_parser, main
from infnet.io.images import read_gray
from infnet.models import create_model, load_checkpoint, save_checkpoint
from infnet.semi import PAPER_SETTING, SemiConfig, run_semi

TINY = ["--batch-size", "2", "--train-size", "64", "--encoder-weights", "none", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads cost more than they give


@pytest.fixture
def data(tmp_path) -> dict[str, Path]:
    li, lm = make_slices(tmp_path / "lab", n=3)
    ui, um = make_slices(tmp_path / "unl", n=5, seed=1)
    init = tmp_path / "init.safetensors"
    save_checkpoint(create_model("infnet-effl0"), init)
    return dict(li=li, lm=lm, ui=ui, published=um, init=init, root=tmp_path)


def _digest(*folders: Path) -> str:
    h = hashlib.sha256()
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            h.update(p.name.encode() + (p.read_bytes() if p.is_file() else b""))
    return h.hexdigest()


def _cfg(data: dict, **kw) -> SemiConfig:
    base = dict(
        init_checkpoint=str(data["init"]), labeled_images=str(data["li"]), labeled_masks=str(data["lm"]),
        unlabeled_images=str(data["ui"]), k=2, round_cap=3, pretrain_epochs=1, finetune_epochs=1,
        batch_size=2, train_size=64, encoder_weights=None,
    )  # fmt: skip
    base.update(kw)
    return SemiConfig(**base)


def _manifest(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]


def test_algorithm_killed_then_resumed(data, monkeypatch):
    run = data["root"] / "run"
    inputs = _digest(data["li"], data["lm"], data["ui"])
    real, calls = trainer.train, []

    def killed_in_round_2(cfg, run_dir, resume=False, progress=True):
        calls.append(Path(run_dir))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, run_dir, resume=resume, progress=progress)

    monkeypatch.setattr(trainer, "train", killed_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        run_semi(_cfg(data), run, progress=False)
    assert (run / "rounds/r001/done.json").is_file() and not (run / "rounds/r002/done.json").exists()
    assert [e["round"] for e in _manifest(run)] == [1, 1, 2, 2]

    calls.clear()
    monkeypatch.setattr(trainer, "train", lambda *a, **kw: calls.append(Path(a[1])) or real(*a, **kw))
    best = run_semi(SemiConfig(), run, resume=True, progress=False)  # the saved semi.json wins
    # Round 1 is not trained again; the run continues at round 2, then pre-training and fine-tuning.
    assert [p.relative_to(run).as_posix() for p in calls] == ["rounds/r002/run", "pretrain/run", "finetune/run"]

    # 5 unlabeled slices, K=2: passes of 2, 2, 1 -> 2 fine-tuning rounds; each pass uses the latest model.
    entries = _manifest(run)
    assert [e["round"] for e in entries] == [1, 1, 2, 2, 3]
    assert len({e["image"] for e in entries}) == 5
    assert [Path(e["checkpoint"]) for e in entries[::2]] == [
        data["init"].resolve(),
        (run / "rounds/r001/run/last.safetensors").resolve(),
        (run / "rounds/r002/run/last.safetensors").resolve(),
    ]
    assert all(e["seed"] == 0 for e in entries)
    for e in entries:
        label = read_gray(e["label"])
        assert set(np.unique(label)) <= {0, 255} and label.shape == read_gray(e["image"]).shape
    for r in ("r001", "r002"):
        links = list((run / "rounds" / r / "data" / "images").iterdir())
        assert len(links) == 3 and all(p.is_symlink() for p in links)  # the per-round cap
    assert len(list((run / "pretrain/data/masks").iterdir())) == 5  # all pseudo-labels
    assert load_checkpoint(best).arch_name == "infnet-effl0"
    assert json.loads((run / "result.json").read_text())["checkpoint"] == str(best)
    assert _digest(data["li"], data["lm"], data["ui"]) == inputs  # inputs untouched
    # The default fine-tuning recipe is the labeled-set model's: multi-scale, batch 4, decay at 3/4 (min 1).
    ft = json.loads((run / "finetune/run/config.json").read_text())
    assert ft["rates"] == [0.75, 1.0, 1.25] and ft["batch_size"] == 4 and ft["decay_epoch"] == 1
    assert json.loads((run / "pretrain/run/config.json").read_text())["rates"] == [1.0]


def test_from_published_cli_and_resume_refusal(data, capsys):
    # Published labels carry interpolated grey values: 128 counts as infection, 127 does not.
    mask = np.array(Image.open(data["published"] / "0.png"))
    mask[:2, :2], mask[-2:, -2:] = 128, 127
    Image.fromarray(mask).save(data["published"] / "0.png")
    run = data["root"] / "pub"
    args = [
        "semi", "--out", str(run), "--from-published", "--model", "infnet-effl0",
        "--labeled-images", str(data["li"]), "--labeled-masks", str(data["lm"]), "--unlabeled", str(data["ui"]),
        "--published-masks", str(data["published"]), "--pretrain-epochs", "1", "--finetune-epochs", "1", *TINY,
    ]  # fmt: skip
    assert main(args) == 0
    entries = _manifest(run)
    assert len(entries) == 5 and {(e["round"], e["checkpoint"]) for e in entries} == {(0, "published")}
    assert (run / "finetune/run/best.safetensors").is_file() and not (run / "rounds").exists()

    from infnet.data.dataset import SliceDataset

    ds = SliceDataset(run / "pretrain/data/images", run / "pretrain/data/masks", size=64)
    i = ds.stems.index("U_0")
    assert ds.masks[i][0, 0] == 128 and ds.masks[i][-1, -1] == 127
    binary = ds.masks[i] > 127  # the dataset's threshold
    assert binary[0, 0] and not binary[-1, -1]

    capsys.readouterr()
    before = _digest(run)
    assert main([*args, "--resume"]) == 0  # everything finished: nothing retrained or rewritten
    assert _digest(run) == before
    capsys.readouterr()
    assert main([*[a if a != "infnet-effl0" else "infnet-effl2" for a in args], "--resume"]) == 2
    err = capsys.readouterr().err
    assert "is for model 'infnet-effl0', not 'infnet-effl2'" in err and len(err.strip().splitlines()) == 1
    assert main(args) == 2  # occupied without --resume
    assert "already holds a Semi-Inf-Net run" in capsys.readouterr().err
    assert _digest(run) == before


def test_empty_unlabeled_folder_cli(data, capsys):
    empty = data["root"] / "empty"
    empty.mkdir()
    out = data["root"] / "run"
    code = main(["semi", "--out", str(out), "--init", str(data["init"]), "--labeled-images", str(data["li"]),
                 "--labeled-masks", str(data["lm"]), "--unlabeled", str(empty), *TINY])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"{empty}: no unlabeled images found" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_needs_init_or_published(data, capsys):
    code = main(["semi", "--out", str(data["root"] / "run"), "--labeled-images", str(data["li"]),
                 "--labeled-masks", str(data["lm"]), "--unlabeled", str(data["ui"]), *TINY])  # fmt: skip
    assert code == 2 and "--init CHECKPOINT" in capsys.readouterr().err


def test_budget_defaults_and_paper_flag():
    from infnet.cli.semi import _budget

    parser = build_parser()
    budget = _budget(parser.parse_args(["semi", "--out", "x", "--init", "c"]))
    d = SemiConfig()
    assert budget == dict(
        k=d.k, round_cap=d.round_cap, rates=d.rates, pretrain_epochs=1, finetune_epochs=30,
        finetune_rates=[0.75, 1.0, 1.25], finetune_decay_epoch=None,
    )  # fmt: skip
    assert _budget(parser.parse_args(["semi", "--out", "x", "--init", "c", "--paper"])) == PAPER_SETTING
    assert PAPER_SETTING["k"] == 5 and -(-1600 // PAPER_SETTING["k"]) == 320
    custom = _budget(
        parser.parse_args(["semi", "--out", "x", "--init", "c", "--paper", "--k", "50", "--round-cap", "none"])
    )
    assert custom["k"] == 50 and custom["round_cap"] is None


def test_real_dataset_sources(semiseg_root):
    from infnet.semi.algorithm import _sources

    labeled, unlabeled, published, finetune = _sources(SemiConfig(data=str(semiseg_root), from_published=True))
    assert len(labeled) == 45 and len(unlabeled) == 1600
    assert published.is_dir() and finetune["val_split"] == "val"


def test_finetune_recipe_options_reach_only_the_finetuning_step(data):
    args = [
        "semi", "--out", str(data["root"] / "ft"), "--from-published", "--model", "infnet-effl0",
        "--labeled-images", str(data["li"]), "--labeled-masks", str(data["lm"]), "--unlabeled", str(data["ui"]),
        "--published-masks", str(data["published"]), "--pretrain-epochs", "1", "--finetune-epochs", "2",
        "--finetune-rates", "0.75", "1.0", "--finetune-batch-size", "1", "--finetune-decay-epoch", "1",
        "--finetune-size", "96", *TINY,
    ]  # fmt: skip
    assert main(args) == 0
    run = data["root"] / "ft"
    saved = json.loads((run / "semi.json").read_text())
    assert saved["finetune_rates"] == [0.75, 1.0] and saved["finetune_batch_size"] == 1
    pre = json.loads((run / "pretrain/run/config.json").read_text())
    ft = json.loads((run / "finetune/run/config.json").read_text())
    assert pre["rates"] == [1.0] and pre["batch_size"] == 2 and pre["train_size"] == 64
    assert ft["rates"] == [0.75, 1.0] and ft["batch_size"] == 1 and ft["decay_epoch"] == 1 and ft["epochs"] == 2
    assert ft["train_size"] == 96 and saved["finetune_size"] == 96


def test_older_semi_json_keeps_its_finetuning_recipe(tmp_path):
    # semi.json files from before the fine-tuning step had its own defaults: the shared recipe, decay at half.
    saved = json.loads(SemiConfig().to_json())
    old = {k: v for k, v in saved.items() if not k.startswith("finetune_")}
    old["finetune_epochs"] = 20
    (tmp_path / "semi.json").write_text(json.dumps(old))
    cfg = SemiConfig.load(tmp_path / "semi.json")
    assert cfg.finetune_rates is None and cfg.finetune_batch_size is None and cfg.finetune_decay_epoch == 10
    assert SemiConfig().finetune_rates == [0.75, 1.0, 1.25] and SemiConfig().finetune_batch_size == 4
