"""Baselines: forward contract (binary and multi-class), offline ImageNet weights, checkpoints, binary training."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from _synth import make_slices
from infnet.cli import main
from infnet.errors import InfnetError
from infnet.models import create_model, list_models, load_checkpoint, save_checkpoint
from infnet.models.baselines import BASELINES, load_lite2_weights
from infnet.models.encoders import lite_imagenet_state
from infnet.training.config import TrainConfig
from infnet.training.trainer import train

NAMES = ["unet-effl2", "unetpp-effl2", "deeplabv3p-os8-effl2", "deeplabv3p-os16-effl2", "fcn8s-vgg16", "fcn8s-effl2"]
TINY = {"fcn8s-vgg16": dict(base_channels=4, fc_channels=8)}  # keeps the from-scratch VGG cheap


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads cost more than they give


def test_registered():
    assert set(NAMES) == set(BASELINES) and set(NAMES) <= set(list_models())


@pytest.mark.parametrize("name", NAMES)
def test_forward_contract_binary_and_multiclass(name):
    for in_chans, classes in ((3, 1), (4, 3)):
        model = create_model(name, encoder_weights=None, in_chans=in_chans, num_classes=classes, **TINY.get(name, {}))
        assert len(model.mean) == len(model.std) == 3
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(1, in_chans, 70, 66))  # not a multiple of 32: padded, then cropped
        assert out["edge"] is None and len(out["maps"]) == 1 and out["out"] is out["maps"][0]
        assert out["out"].shape == (1, classes, 70, 66)
        # A registered builder takes the config back (what load_checkpoint relies on).
        again = create_model(name, encoder_weights=None, **model.config.to_dict())
        assert again.config == model.config


def test_deeplab_trains_on_a_batch_of_one():
    model = create_model("deeplabv3p-os16-effl2", encoder_weights=None).train()
    model(torch.randn(1, 3, 64, 64))["out"].sum().backward()


@pytest.mark.skipif(lite_imagenet_state("efficientnet_lite2") is None, reason="offline Lite2 weights not installed")
def test_imagenet_weights_offline_without_download(monkeypatch):
    import timm

    calls = []
    real = timm.create_model

    def spy(*args, **kw):
        calls.append(kw.get("pretrained", False))
        return real(*args, **kw)

    monkeypatch.setattr(timm, "create_model", spy)
    state = lite_imagenet_state("efficientnet_lite2")
    unet = create_model("unet-effl2", encoder_weights="imagenet")
    assert torch.equal(
        unet.net.encoder.model.state_dict()["blocks.3.0.conv_pw.weight"], state["blocks.3.0.conv_pw.weight"]
    )
    fcn = create_model("fcn8s-effl2", encoder_weights="imagenet", in_chans=4, num_classes=3)
    assert fcn.encoder.conv_stem.weight.shape[1] == 4  # stem adapted to image + prior
    assert torch.equal(fcn.encoder.state_dict()["bn1.running_var"], state["bn1.running_var"])
    assert calls and not any(calls)  # never asked timm (or smp through it) for pretrained weights


def test_encoder_key_mismatch_fails_loudly(tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({"features.0.weight": torch.zeros(2, 3, 3, 3)}, str(bad))
    model = create_model("fcn8s-effl2", encoder_weights=None)
    with pytest.raises(InfnetError, match="do not match timm tf_efficientnet_lite2: .* missing keys"):
        load_lite2_weights(model.encoder, str(bad), 3)


def test_checkpoint_round_trip(tmp_path):
    model = create_model("deeplabv3p-os8-effl2", encoder_weights=None, in_chans=4, num_classes=3).eval()
    save_checkpoint(model, tmp_path / "m.safetensors")
    back = load_checkpoint(tmp_path / "m.safetensors")
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x)["out"], back(x)["out"])
    assert back.config.in_chans == 4 and back.arch_name == "deeplabv3p-os8-effl2"


def test_binary_baseline_trains_through_existing_trainer(tmp_path, capsys):
    imgs, masks = make_slices(tmp_path / "data", n=4)
    cfg = TrainConfig(
        model="unet-effl2", encoder_weights=None, train_images=str(imgs), train_masks=str(masks),
        val_images=str(imgs), val_masks=str(masks), epochs=1, batch_size=2, train_size=64, rates=[1.0],
    )  # fmt: skip
    best = train(cfg, tmp_path / "run", progress=False)
    model = load_checkpoint(best)
    assert model.arch_name == "unet-effl2"
    # Resuming it as another architecture is refused with one line, nothing written.
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    code = main(["train", "--out", str(tmp_path / "run"), "--resume", "--model", "fcn8s-effl2", "--quiet",
                 "--train-images", str(imgs), "--train-masks", str(masks)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "is for model 'unet-effl2', not 'fcn8s-effl2'" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
