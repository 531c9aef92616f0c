"""Segmenter (NumPy in, NumPy out), `infnet predict` end to end, and `infnet models`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from _synth import make_slices
from infnet.cli import main
from infnet.errors import InfnetError
from infnet.inference import Segmenter
from infnet.models import create_model, save_checkpoint


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("infnet-effl0")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(model, path, extra={"input_size": 64})
    return path


def test_segmenter_numpy_in_numpy_out(tiny_ckpt):
    seg = Segmenter.from_pretrained(tiny_ckpt, device="cpu")
    assert seg.input_size == 64 and seg.classes == ("infection",)
    stack = np.random.default_rng(0).integers(0, 255, (3, 50, 70), dtype=np.uint8)
    probs = seg.predict_proba(stack)
    assert probs.shape == (3, 1, 50, 70) and probs.dtype == np.float32
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    ragged = seg.predict_proba([stack[0], stack[1, :40, :30]])
    assert ragged[0].shape == (1, 50, 70) and ragged[1].shape == (1, 40, 30)
    np.testing.assert_allclose(ragged[0], probs[0], atol=1e-5)
    mask = seg.predict(stack[0])
    assert mask.shape == (50, 70) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert seg.predict(stack).shape == stack.shape
    with pytest.raises(ValueError, match="uint8"):
        seg.predict_proba(stack.astype(np.float32))


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(InfnetError, match="architecture without trained weights"):
        Segmenter.from_pretrained("infnet-effl2")
    with pytest.raises(InfnetError, match="unknown model 'nope'"):
        Segmenter.from_pretrained("nope")
    with pytest.raises(InfnetError, match="model file not found"):
        Segmenter.from_pretrained(tmp_path / "missing.safetensors")


def test_predict_cli_then_evaluate(tmp_path, tiny_ckpt, capsys):
    imgs, masks = make_slices(tmp_path / "data", n=3, size=(40, 56), ext=".jpg")
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(tiny_ckpt), "--input", str(imgs), "--output", str(out), "--quiet"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["0.png", "1.png", "2.png"]
    with Image.open(out / "0.png") as im:
        assert im.size == (56, 40) and im.mode == "L"
    assert main(["evaluate", "--pred", str(out), "--gt", str(masks), "--json", str(tmp_path / "m.json")]) == 0
    capsys.readouterr()
    # a single file works too
    assert (
        main(
            [
                "predict",
                "--model",
                str(tiny_ckpt),
                "--input",
                str(imgs / "1.jpg"),
                "--output",
                str(tmp_path / "one"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "one" / "1.png").is_file()
    # scale + mirror TTA from the CLI: same files and sizes; a bad scale is one line, nothing written
    ms = ["predict", "--model", str(tiny_ckpt), "--input", str(imgs), "--quiet", "--tta", "--tta-scales", "0.75", "1"]
    assert main([*ms, "--output", str(tmp_path / "ms")]) == 0
    assert sorted(p.name for p in (tmp_path / "ms").iterdir()) == files
    capsys.readouterr()
    assert main([*ms[:-2], "-1", "--output", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "TTA scales must be numbers in (0, 4]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_predict_cli_bad_input(tmp_path, tiny_ckpt, capsys):
    imgs, _ = make_slices(tmp_path / "data", n=1)
    before = sorted(p.name for p in imgs.iterdir())
    code = main(["predict", "--model", str(tiny_ckpt), "--input", str(imgs), "--output", str(imgs), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "output folder is the input folder" in err
    assert sorted(p.name for p in imgs.iterdir()) == before
    code = main(["predict", "--model", str(tiny_ckpt), "--input", str(tmp_path / "none"), "--output", "x"])
    assert code == 2 and "folder not found" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["predict", "--model", str(tiny_ckpt), "--input", str(empty), "--output", str(tmp_path / "o")])
    assert code == 2 and "no PNG/JPG slices" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    code = main(["predict", "--model", str(bad), "--input", str(imgs), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.safetensors" in err and "Traceback" not in err


def test_models_cli_lists_architectures(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "infnet-effl2" in out and "infnet-res2net50" in out and "efficientnet_lite2" in out
    assert main(["models", "--all"]) == 0
    assert "infnet-effl2-no3" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "infnet 0.1.0" in capsys.readouterr().out


def test_segmenter_on_files_and_hu_volumes(tiny_ckpt, tmp_path):
    """The real Segmenter (tiny untrained weights) drives the scan pipeline: slices, HU arrays, files."""
    from infnet.scan.samples import bundled_samples, synthetic_chest_ct

    seg = Segmenter.from_pretrained(tiny_ckpt, device="cpu")
    result = seg.segment_file(bundled_samples() / "slices" / "semiseg_test_60.jpg", progress=False)
    assert result.measurements and not result.is_volume
    arr, _ = synthetic_chest_ct(shape=(3, 96, 96))
    mask = seg.predict(arr)  # int16 HU volume -> scan pipeline (window, orientation, lung crop)
    assert mask.shape == arr.shape and mask.dtype == np.uint8


def test_flip_tta_is_mirror_equivariant(tiny_ckpt):
    img = np.random.default_rng(3).integers(0, 255, (48, 64), dtype=np.uint8)
    plain = Segmenter.from_pretrained(tiny_ckpt, device="cpu")
    tta = Segmenter.from_pretrained(tiny_ckpt, device="cpu", tta=True)
    p, q = tta.predict_proba(img[None])[0, 0], tta.predict_proba(img[None, :, ::-1].copy())[0, 0]
    np.testing.assert_allclose(q, p[:, ::-1], atol=1e-5)  # mirrored input -> mirrored output, exactly
    raw, raw_m = plain.predict_proba(img[None])[0, 0], plain.predict_proba(img[None, :, ::-1].copy())[0, 0]
    assert np.abs(raw_m - raw[:, ::-1]).max() > 1e-4  # the network alone is not mirror-symmetric
    # the TTA map is the sigmoid of the mean of the two logits
    logit = lambda x: np.log(x) - np.log1p(-x)  # noqa: E731
    np.testing.assert_allclose(logit(p), (logit(raw) + logit(raw_m[:, ::-1])) / 2, atol=2e-3)


def test_dihedral_tta_gives_one_answer_in_every_orientation(tiny_ckpt):
    from infnet.data.presentation import dihedral, undo_dihedral
    from infnet.errors import InfnetError

    img = np.random.default_rng(4).integers(0, 255, (64, 64), dtype=np.uint8)
    d4 = Segmenter.from_pretrained(tiny_ckpt, device="cpu", tta="dihedral")
    plain = Segmenter.from_pretrained(tiny_ckpt, device="cpu")
    assert d4.tta == "dihedral" and plain.tta == "none"
    ref = d4.predict_proba(img[None])[0, 0]
    for k in range(1, 8):  # every flip/rotation of the input gives the same map, turned the same way
        got = d4.predict_proba(np.ascontiguousarray(dihedral(img, k))[None])[0, 0]
        np.testing.assert_allclose(undo_dihedral(got, k), ref, atol=1e-5)
    raw = plain.predict_proba(np.stack([np.ascontiguousarray(dihedral(img, k)) for k in range(8)]))[:, 0]
    logit = lambda x: np.log(x) - np.log1p(-x)  # noqa: E731
    mean = np.mean([logit(undo_dihedral(r, k)) for k, r in enumerate(raw)], axis=0)
    np.testing.assert_allclose(logit(ref), mean, atol=2e-3)  # the sigmoid of the mean of the 8 logits
    with pytest.raises(InfnetError, match="unknown TTA 'quad'"):
        Segmenter.from_pretrained(tiny_ckpt, device="cpu", tta="quad")


def test_scale_tta_averages_the_logits_of_each_input_size(tiny_ckpt):
    import torch
    import torch.nn.functional as F

    from infnet.inference import tta_logits

    seg = Segmenter.from_pretrained(tiny_ckpt, device="cpu", tta_scales=[0.75, 1.0])
    assert seg.tta_scales == (0.75, 1.0)

    def at(t, size):  # bilinear resize to size x size (identity when already there)
        return t if t.shape[-1] == size else F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)

    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        small = at(seg.model(at(x, 96))["out"].float(), 128)  # 0.75 x 128 = 96, a multiple of 32
        full = at(seg.model(x)["out"].float(), 128)
        got = tta_logits(seg.model, x, (0.75, 1.0))
        np.testing.assert_allclose(got.numpy(), ((small + full) / 2).numpy(), atol=1e-5)
        plain = seg.model(x)["out"].float()
        np.testing.assert_allclose(tta_logits(seg.model, x, (1.0,)).numpy(), plain.numpy(), atol=1e-6)
    img = np.random.default_rng(4).integers(0, 255, (40, 56), dtype=np.uint8)
    assert seg.predict_proba(img[None]).shape == (1, 1, 40, 56)
    with pytest.raises(InfnetError, match="TTA scales"):
        Segmenter.from_pretrained(tiny_ckpt, device="cpu", tta_scales=[0.0, 1.0])
    from infnet.scan.pipeline import predictor_settings

    mirrored = Segmenter.from_pretrained(tiny_ckpt, device="cpu", tta=True, tta_scales=[0.75, 1.0], temperature=2)
    assert predictor_settings(mirrored) == {"temperature": 2.0, "tta": {"views": "mirror", "scales": [0.75, 1.0]}}
