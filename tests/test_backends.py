"""ONNX Runtime backend: equal to torch on real test slices for every bundled model; its export cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infnet import backends
from infnet.data.dataset import to_tensor_image
from infnet.errors import InfnetError
from infnet.inference import Segmenter, tta_logits
from infnet.io.images import list_images, read_gray
from infnet.models import registry, weights

pytest.importorskip("onnxruntime")

# ORT's float32 kernels differ from torch's by up to ~3e-4 on these logits (|logit| up to ~25); torch's own float32
# error against float64 is ~5e-5 and ORT's ~2e-4 even with every graph optimisation off (benchmarks/bench_fast.py).
# The error grows with the logit: the robust Semi-Inf-Net's reach |84|, where ORT is 6e-4 off at -45.6 (1.3e-5 of
# it), hence a relative part too.
LOGIT_ATOL, LOGIT_RTOL = 5e-4, 1e-4
BINARY = [
    "infnet-effl2-semiseg", "infnet-effl2-semi-semiseg", "infnet-effl2-semi-ens3-semiseg",
    "infnet-effl2-robust-semiseg", "infnet-effl2-semi-robust-semiseg", "infnet-effl2-semi-robust-ens2-semiseg",
]


@pytest.fixture(scope="module")
def test_slices(semiseg_root):
    files = list_images(semiseg_root / "Dataset" / "TestingSet" / "LungInfection-Test" / "Imgs")
    return [read_gray(f) for f in files[:3]]


def _pair(name: str) -> tuple[Segmenter, Segmenter]:
    model = registry.load_bundled(name)
    size = model.bundled_entry["input_size"]
    return Segmenter(model, name, size, backend="torch"), Segmenter(model, name, size, backend="onnx")


@pytest.mark.parametrize("name", BINARY)
def test_binary_models_equal_torch(name, test_slices):
    torch_seg, ort_seg = _pair(name)
    assert isinstance(ort_seg.net, backends.OrtNet)
    assert ort_seg.net.path.name == f"{weights.bundled_entry(name)['sha256']}.onnx"
    x = torch.stack([to_tensor_image(s, torch_seg.input_size, torch_seg.mean, torch_seg.std) for s in test_slices])
    with torch.inference_mode():
        ref = tta_logits(torch_seg.net, x.contiguous(memory_format=torch.channels_last))
        got = tta_logits(ort_seg.net, x)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, rtol=LOGIT_RTOL, atol=LOGIT_ATOL), float((got - ref).abs().max())
    for a, b in zip(torch_seg.predict_proba(test_slices), ort_seg.predict_proba(test_slices), strict=True):
        assert a.shape == b.shape == (1, *a.shape[1:])
        np.testing.assert_array_equal(a >= 0.5, b >= 0.5)  # identical masks


def test_tta_and_temperature_around_ort(test_slices):
    model = registry.load_bundled(BINARY[0])
    kw = dict(input_size=352, tta=True, tta_scales=(0.75, 1.0, 1.25), temperature=2.0)
    a = Segmenter(model, backend="torch", **kw).predict_proba(test_slices[:2])
    b = Segmenter(model, backend="onnx", **kw).predict_proba(test_slices[:2])
    for p, q in zip(a, b, strict=True):
        np.testing.assert_allclose(p, q, atol=LOGIT_ATOL)  # |d sigmoid(2z)| <= |dz| / 2
        np.testing.assert_array_equal(p >= 0.5, q >= 0.5)


@pytest.mark.parametrize("name", ["fcn8s-effl2-multiclass-semiseg", "density-split-multiclass-semiseg"])
def test_multiclass_models_equal_torch(name, test_slices):
    from infnet.multiclass.predict import MultiClassSegmenter
    from infnet.scan.preprocess import labels_from_prob

    a = MultiClassSegmenter.from_pretrained(name, backend="torch")
    b = MultiClassSegmenter.from_pretrained(name, backend="onnx")
    assert b.infection.backend == "onnx"
    # the density split runs each slice at its own size: it stays in torch (its infection model uses ORT)
    assert b.backend == ("torch" if name.startswith("density") else "onnx")
    for p, q in zip(a.predict_proba(test_slices), b.predict_proba(test_slices), strict=True):
        np.testing.assert_allclose(p, q, atol=LOGIT_ATOL)
        np.testing.assert_array_equal(labels_from_prob(p), labels_from_prob(q))  # identical masks


def test_int8_decoder_keeps_the_masks(test_slices):
    """onnx-int8: decoder nodes quantised, encoder fp32, cached as <sha>.int8.onnx; masks as the fp32 graph's."""
    name = BINARY[0]
    model = registry.load_bundled(name)
    fp32 = Segmenter(model, name, 352, backend="onnx")
    int8 = Segmenter(model, name, 352, backend="onnx-int8").prepare()
    assert int8.backend == "onnx-int8" and int8.net.path.name == f"{weights.bundled_entry(name)['sha256']}.int8.onnx"
    meta = int8.net.session.get_modelmeta().custom_metadata_map
    assert meta["infnet_int8"] == backends.INT8_SCHEME
    import onnx

    graph = onnx.load(str(int8.net.path)).graph
    quantised = {n.name.split("_DequantizeLinear")[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    assert any("/ra." in q or "/ppd/" in q for q in quantised)  # decoder tensors carry int8 ranges
    dq_out = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    encoder_convs = [n for n in graph.node if "/encoder/" in n.name and n.op_type == "Conv"]
    assert encoder_convs and not any(n.input[1] in dq_out for n in encoder_convs)  # encoder weights stay fp32
    for a, b in zip(fp32.predict_proba(test_slices), int8.predict_proba(test_slices), strict=True):
        ma, mb = a[0] >= 0.5, b[0] >= 0.5
        assert 2 * (ma & mb).sum() / (ma.sum() + mb.sum()) > 0.98  # mask agreement on real infected slices
        assert float(np.abs(a - b).mean()) < 0.01  # T = 8 maps are sharp: only boundary pixels move
    again = backends.onnx_net(model, 352, int8=True)  # read from the cache, not rebuilt
    assert again.path == int8.net.path and again.path.stat().st_mtime == int8.net.path.stat().st_mtime
    assert backends.resolve_backend("onnx-int8", torch.device("cpu")) == "onnx-int8"
    assert len(backends.calibration_slices()) == 8


def test_int8_leaves_multiclass_networks_in_fp32():
    from infnet.multiclass.predict import MultiClassSegmenter

    seg = MultiClassSegmenter.from_pretrained("fcn8s-effl2-multiclass-semiseg", backend="onnx-int8")
    assert seg.backend == "onnx-int8" and seg.infection.backend == "onnx-int8"
    seg.prepare()
    assert seg.infection.net.path.name.endswith(".int8.onnx")
    assert not seg.net.path.name.endswith(".int8.onnx")  # it also reads the prior: fp32


class _Tiny(torch.nn.Module):
    """A two-layer net with the registered models' output contract (exports in milliseconds)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1))

    def forward(self, x):
        return {"out": self.body(x)}


def test_cache_rebuilds_missing_corrupt_and_stale(tmp_path):
    model = _Tiny().eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        ref = model(x)["out"]
    net = backends.onnx_net(model, size=64, cache=tmp_path)  # missing: exported
    key = backends.weights_sha256(model)
    assert net.path == tmp_path / f"{key}.onnx" and net.path.is_file() and len(key) == 64
    assert not list(tmp_path.glob(".*"))  # written through a temporary file and a rename
    assert float((net(x) - ref).abs().max()) < 1e-5
    good = net.path.read_bytes()
    for bad in (good[: len(good) // 3], b"not onnx"):  # truncated (an interrupted copy), or another file
        net.path.write_bytes(bad)
        assert float((backends.onnx_net(model, size=64, cache=tmp_path)(x) - ref).abs().max()) < 1e-5
        assert net.path.read_bytes() == good
    (tmp_path / "stale.onnx").write_bytes(good)  # a valid export filed under another key: its metadata says so
    model.weights_sha256 = "stale"
    rebuilt = backends.onnx_net(model, size=64, cache=tmp_path)
    assert rebuilt.session.get_modelmeta().custom_metadata_map["infnet_sha256"] == "stale"
    odd = torch.rand(1, 3, 50, 70)  # not a multiple of 32: runs in torch, same contract
    with torch.inference_mode():
        np.testing.assert_allclose(rebuilt(odd).numpy(), model(odd)["out"].numpy(), atol=1e-6)


def test_backend_choice_and_errors(monkeypatch):
    cpu = torch.device("cpu")
    assert backends.resolve_backend("auto", cpu) == "onnx" and backends.resolve_backend(None, cpu) == "onnx"
    assert backends.resolve_backend("torch", cpu) == "torch"
    with pytest.raises(InfnetError, match="unknown backend 'tensorrt'"):
        backends.resolve_backend("tensorrt", cpu)
    monkeypatch.setattr(backends, "onnx_available", lambda: False)
    assert backends.resolve_backend("auto", cpu) == "torch"  # the fallback
    with pytest.raises(InfnetError, match="needs onnxruntime"):
        backends.resolve_backend("onnx", cpu)


def test_cli_backend_flag(tmp_path, test_slices):
    """The bundled default through `infnet predict` with each backend (its export is cached by the tests above)."""
    from infnet.cli import main

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    from infnet.io.images import write_png

    write_png(imgs / "a.png", test_slices[0])
    for backend in ("torch", "onnx", "onnx-int8"):
        out = tmp_path / backend
        cmd = ["predict", "--input", str(imgs), "--output", str(out), "--quiet"]
        assert main([*cmd, "--backend", backend]) == 0
        assert (out / "a.png").is_file()
    a, b = read_gray(tmp_path / "torch" / "a.png"), read_gray(tmp_path / "onnx" / "a.png")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--input", str(imgs), "--output", str(tmp_path / "x"), "--backend", "tpu"])
    assert exc.value.code == 2


def test_an_int8_graph_that_disagrees_with_fp32_is_refused():
    """check_int8: the int8 masks must match the fp32 ones on the calibration slices (CPUs whose int8 kernels
    saturate would otherwise give wrong masks silently)."""
    model = registry.load_bundled(BINARY[0])

    def fp32(x):
        return torch.ones(x.shape[0], 1, *x.shape[-2:])

    assert backends.check_int8(fp32, fp32, model, 64) == 1.0

    def half_wrong(x):  # the left half of every mask lost: Dice 2/3
        out = fp32(x)
        out[..., : x.shape[-1] // 2] = -1
        return out

    with pytest.raises(InfnetError, match="onnx-int8: on this CPU .*Dice 0.667 .* use --backend onnx"):
        backends.check_int8(fp32, half_wrong, model, 64)
