"""Hostile inputs: each generator writes one small damaged or implausible input; the CLI must answer it with exit
status 2, one stderr line naming the file, no traceback, and leave the input untouched. No model runs here: the
errors come before the model (segment gets a stub predictor), so the module stays fast."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from _dicom import write_series
from infnet.cli import main

RNG = np.random.default_rng(0)


def _png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def _noise(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 255, (h, w), dtype=np.uint8)


def _nifti(path: Path, array: np.ndarray, spacing=(0.7, 0.7, 2.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _patched_pixdim(path: Path, z: float) -> Path:
    """A NIfTI whose header voxel size in z is ``z`` (written raw: ITK would not write such a header)."""
    raw = bytearray(_nifti(path.with_name("src.nii"), np.zeros((4, 40, 40), np.int16)).read_bytes())
    path.with_name("src.nii").unlink()
    raw[88:92] = struct.pack("<f", z)
    path.write_bytes(bytes(raw))
    return path


# --------------------------------------------------------------------------------------- input generators


def tiny_png(d: Path) -> Path:
    return _png(d / "tiny.png", np.zeros((1, 1)))


def constant_png(d: Path) -> Path:
    return _png(d / "flat.png", np.full((64, 64), 90))


def strip_png(d: Path) -> Path:
    return _png(d / "strip.png", _noise(10, 10000))


def long_png(d: Path) -> Path:
    return _png(d / "long.png", _noise(40, 400))


def same_stem_folder(d: Path) -> Path:
    folder = d / "slices"
    folder.mkdir()
    _png(folder / "x.png", _noise(64, 64))
    Image.fromarray(_noise(64, 64)).save(folder / "x.jpg")
    return folder


def nifti_zero_spacing(d: Path) -> Path:
    return _patched_pixdim(d / "zero.nii", 0.0)


def nifti_negative_spacing(d: Path) -> Path:
    return _patched_pixdim(d / "negative.nii", -2.0)


def nifti_nan_spacing(d: Path) -> Path:
    return _patched_pixdim(d / "nan.nii", float("nan"))


def nifti_absurd_spacing(d: Path) -> Path:
    return _patched_pixdim(d / "absurd.nii", 1e6)


def nifti_all_nan(d: Path) -> Path:
    return _nifti(d / "allnan.nii.gz", np.full((4, 40, 40), np.nan, np.float32))


def nifti_bomb(d: Path) -> Path:
    """A ~4 KB .nii.gz whose header declares 2048 x 2048 x 1024 int16 voxels."""
    header = bytearray(_nifti(d / "src.nii", np.zeros((2, 8, 8), np.int16)).read_bytes()[:352])
    (d / "src.nii").unlink()
    header[40:56] = struct.pack("<8h", 3, 2048, 2048, 1024, 1, 1, 1, 1)
    path = d / "bomb.nii.gz"
    path.write_bytes(gzip.compress(bytes(header) + bytes(4096)))
    return path


def nifti_short(d: Path) -> Path:
    raw = _nifti(d / "short.nii", np.zeros((4, 40, 40), np.int16)).read_bytes()
    (d / "short.nii").write_bytes(raw[: len(raw) // 2])
    return d / "short.nii"


def dicom_duplicate(d: Path) -> Path:
    return write_series(d / "dup", [0, 2, 4, 4, 6])


def dicom_mixed_orientation(d: Path) -> Path:
    iop = [[1, 0, 0, 0, 1, 0]] * 3 + [[1, 0, 0, 0, 0, -1]]
    return write_series(d / "mixed", [0, 2, 4, 6], orientations=iop)


def dicom_no_position(d: Path) -> Path:
    return write_series(d / "nopos", [0, 2, 4, 6], drop_position=(0, 1, 2, 3))


def dicom_no_pixels(d: Path) -> Path:
    return write_series(d / "nopix", [0, 2, 4, 6, 8], drop_pixels=(4,))


def dicom_huge_gap(d: Path) -> Path:
    return write_series(d / "hugegap", [0, 2, 4, 40, 42])


SEGMENT_CASES = {
    tiny_png: ("tiny.png", "1x1 px"),
    constant_png: ("flat.png", "constant"),
    strip_png: ("strip.png", "10000"),
    long_png: ("long.png", "aspect"),
    same_stem_folder: ("x.png", "same name stem"),
    nifti_zero_spacing: ("zero.nii", "voxel size"),
    nifti_negative_spacing: ("negative.nii", "voxel size"),
    nifti_nan_spacing: ("nan.nii", "voxel size"),
    nifti_absurd_spacing: ("absurd.nii", "implausible voxel size"),
    nifti_all_nan: ("allnan.nii.gz", "NaN"),
    nifti_bomb: ("bomb.nii.gz", "declares 2048x2048x1024"),
    nifti_short: ("short.nii", "truncated"),
    dicom_duplicate: ("dup", "same position"),
    dicom_mixed_orientation: ("mixed", "different orientations"),
    dicom_no_position: ("s000.dcm", "ImagePositionPatient"),
    dicom_no_pixels: ("s004.dcm", "no pixel data"),
    dicom_huge_gap: ("hugegap", "too large to interpolate"),
}


# ------------------------------------------------------------------------------------------------ harness


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _one_line_error(capsys, argv: list[str], names: str, inputs: Path) -> str:
    before = _tree(inputs)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("infnet: error: "), err
    assert names in lines[0], lines[0]
    assert _tree(inputs) == before, "an input was modified"
    return lines[0]


class EmptyPredictor:
    """A model that finds no infection anywhere: enough to run the scan pipeline end to end without weights."""

    name = "empty"
    classes = ("infection",)

    def predict_proba(self, slices: np.ndarray) -> np.ndarray:
        slices = np.asarray(slices)
        return np.zeros((slices.shape[0], 1, *slices.shape[1:]), np.float32)


@pytest.fixture
def stub_model(monkeypatch):
    """segment without model weights (most cases are refused while reading, before any slice is predicted)."""
    monkeypatch.setattr("infnet.cli.segment.load_predictor", lambda *a, **k: EmptyPredictor())


@pytest.mark.parametrize("make", list(SEGMENT_CASES), ids=[f.__name__ for f in SEGMENT_CASES])
def test_segment_refuses_hostile_input(make, tmp_path, capsys, stub_model):
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = make(inputs)
    names, problem = SEGMENT_CASES[make]
    line = _one_line_error(capsys, ["segment", str(source), "-o", str(tmp_path / "out"), "-q"], names, inputs)
    assert problem in line
    assert not (tmp_path / "out" / "report.json").exists()


def test_segment_output_under_a_file(tmp_path, capsys, stub_model):
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = _png(inputs / "a.png", _noise(64, 64))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    _one_line_error(capsys, ["segment", str(source), "-o", str(blocker / "out"), "-q"], "blocker", inputs)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_evaluate_json_in_read_only_folder(tmp_path, capsys):
    inputs = tmp_path / "in"
    (inputs / "gt").mkdir(parents=True)
    _png(inputs / "gt" / "a.png", np.zeros((64, 64)))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        argv = ["evaluate", "--pred", str(inputs / "gt"), "--gt", str(inputs / "gt")]
        argv += ["--json", str(ro / "o" / "s.json")]
        _one_line_error(capsys, argv, str(ro / "o"), inputs)
    finally:
        ro.chmod(0o755)


def test_evaluate_json_under_a_file(tmp_path, capsys):
    inputs = tmp_path / "in"
    (inputs / "gt").mkdir(parents=True)
    _png(inputs / "gt" / "a.png", np.zeros((64, 64)))
    (tmp_path / "blocker").write_text("x")
    argv = ["evaluate", "--pred", str(inputs / "gt"), "--gt", str(inputs / "gt")]
    _one_line_error(capsys, argv + ["--json", str(tmp_path / "blocker" / "s.json")], "s.json", inputs)


def test_predict_refuses_bad_output_and_duplicate_stems(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    slices = same_stem_folder(inputs)
    existing = inputs / "taken.txt"
    existing.write_text("mine")
    line = _one_line_error(capsys, ["predict", "--input", str(slices), "--output", str(existing)], "taken.txt", inputs)
    assert "not a folder" in line
    line = _one_line_error(capsys, ["predict", "--input", str(slices), "--output", str(tmp_path / "o")], "x.", inputs)
    assert "same name stem" in line
    argv = ["predict", "--input", str(slices), "--output", str(tmp_path / "o"), "--batch-size", "0"]
    _one_line_error(capsys, argv, "--batch-size 0", inputs)


def _bad_checkpoint(path: Path, meta: str) -> Path:
    from safetensors.torch import save

    path.write_bytes(save({"w": torch.zeros(2)}, metadata={"infnet": meta}))
    return path


@pytest.mark.parametrize(
    "meta, problem",
    [
        ("{not json", "not valid JSON"),
        (json.dumps(["a", "list"]), "no architecture name"),
        (json.dumps({"arch": "infnet-effl0", "config": {"encoder": "efficientnet_lite0", "wings": 2}}), "wings"),
    ],
)
def test_checkpoint_with_bad_metadata(tmp_path, capsys, meta, problem):
    inputs = tmp_path / "in"
    inputs.mkdir()
    model = _bad_checkpoint(inputs / "bad.safetensors", meta)
    _png(inputs / "a.png", _noise(64, 64))
    argv = ["predict", "--model", str(model), "--input", str(inputs / "a.png"), "--output", str(tmp_path / "o")]
    line = _one_line_error(capsys, argv, "bad.safetensors", inputs)
    assert problem in line


def _train(out: Path, data: Path, *extra: str) -> list[str]:
    return ["train", "--out", str(out), "--model", "infnet-effl0", "--encoder-weights", "none", "--train-images",
            str(data), "--train-masks", str(data), "--val-split", "none", "--quiet", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--epochs", "0"], "--epochs 0"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--train-size", "0"], "--train-size 0"),
        (["--lr", "-1"], "--lr -1"),
        (["--rates", "0"], "--rates"),
        (["--num-workers", "-1"], "--num-workers -1"),
    ],
)
def test_train_refuses_non_positive_numbers_before_writing(tmp_path, capsys, extra, flag):
    inputs = tmp_path / "in"
    inputs.mkdir()
    run = tmp_path / "run"
    _one_line_error(capsys, _train(run, inputs, *extra), flag, inputs)
    assert not run.exists(), "nothing may be written for a refused configuration"


def test_train_out_onto_a_file(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "taken").write_text("mine")
    line = _one_line_error(capsys, _train(inputs / "taken", inputs), "taken", inputs)
    assert "not a folder" in line


def _run_dir(tmp_path: Path, state: bytes, last: bytes) -> Path:
    """A run directory for `--resume` with the given state.pt and last.safetensors bytes."""
    from _synth import make_slices
    from infnet.training.config import TrainConfig

    imgs, masks = make_slices(tmp_path / "data", n=2)
    run = tmp_path / "in" / "run"
    run.mkdir(parents=True)
    cfg = TrainConfig(model="infnet-effl0", encoder_weights=None, train_images=str(imgs), train_masks=str(masks),
                      val_split=None, epochs=2, batch_size=2, train_size=64, rates=[1.0])  # fmt: skip
    (run / "config.json").write_text(cfg.to_json())
    (run / "state.pt").write_bytes(state)
    (run / "last.safetensors").write_bytes(last)
    return run


def _state_bytes(**extra) -> bytes:
    import io

    buf = io.BytesIO()
    state = {"epoch": torch.tensor(0), "best": torch.tensor(0.0), "optimizer": {}, "rng_cpu": torch.get_rng_state()}
    torch.save({**state, **extra}, buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "state, last, names, problem",
    [
        (b"PK\x03\x04 not a zip", b"", "state.pt", "unreadable training state"),
        ("valid", b"\x08\x00\x00\x00\x00\x00\x00\x00{", "last.safetensors", "unreadable checkpoint"),
        ("valid-sha", b"truncated", "state.pt", "no checkpoint"),
    ],
)
def test_resume_with_damaged_run(tmp_path, capsys, state, last, names, problem):
    if state == "valid":
        state = _state_bytes()
    elif state == "valid-sha":
        state = _state_bytes(checkpoint_sha256="0" * 64)
    run = _run_dir(tmp_path, state, last)
    line = _one_line_error(capsys, _train(run, tmp_path / "data" / "images", "--resume"), names, tmp_path / "in")
    assert problem in line


# ------------------------------------------------------------------ repaired inputs: a correct, explained result


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_nan_voxels_are_outside_the_scan_and_noted(tmp_path, capsys, stub_model):
    import nibabel as nib

    from infnet.scan.samples import synthetic_chest_ct
    from infnet.scan.volume_io import read_scan

    arr, spacing = synthetic_chest_ct((6, 64, 64))
    xyz = np.ascontiguousarray(arr.transpose(2, 1, 0), dtype=np.float32)
    xyz[:3] = np.nan  # the first 3 columns (x) of every slice
    xyz[3, 0, 0] = np.inf
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(xyz, np.diag([*spacing, 1.0])), path)
    vol = read_scan(path)
    low = float(np.nanmin(xyz[np.isfinite(xyz)]))
    assert (vol.array[:, :, :3] == low).all() and vol.array[0, 0, 3] == low
    np.testing.assert_array_equal(vol.array[:, :, 4:], arr[:, :, 4:].astype(np.float32))
    assert len(vol.notes) == 1 and "NaN or infinite" in vol.notes[0]
    out = tmp_path / "out"
    assert main(["segment", str(path), "-o", str(out), "-q", "--no-overlays"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert any("NaN or infinite" in n for n in report["notes"])
    for name in ("mask.nii.gz", "lungs.nii.gz", "report.json"):
        assert (out / name).stat().st_mode & 0o777 == _umask_mode(), name


def test_dicom_gap_is_resampled_and_noted(tmp_path):
    from infnet.scan.volume_io import read_scan

    folder = write_series(tmp_path / "gap", [0, 2, 4, 6, 14, 16, 18])  # slices at 8, 10, 12 mm missing
    vol = read_scan(folder)
    assert vol.geometry.spacing[2] == pytest.approx(2.0) and vol.array.shape[0] == 10
    # HU 10 * file index: sources copied exactly, the gap interpolated linearly between 30 (6 mm) and 40 (14 mm).
    np.testing.assert_array_equal(vol.array[:, 0, 0], [0, 10, 20, 30, 32, 35, 38, 40, 50, 60])
    assert len(vol.notes) == 1 and "resampled linearly onto a uniform 2 mm grid" in vol.notes[0]
    assert "3 interpolated" in vol.notes[0]
    uniform = read_scan(write_series(tmp_path / "even", [0, 2, 4, 6]))
    assert uniform.notes == [] and uniform.geometry.spacing[2] == pytest.approx(2.0)


def test_evaluate_all_empty_is_defined(tmp_path, capsys):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for i in range(2):
        _png(tmp_path / "gt" / f"{i}.png", np.zeros((48, 48)))
        _png(tmp_path / "pred" / f"{i}.png", np.zeros((48, 48)))
    out = tmp_path / "s.json"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert summary["paper"]["meanEm"] == 1.0 and summary["paper"]["meanSpe"] == 0.0
    assert all(0.0 <= v <= 1.0 for v in summary["paper"].values() if v is not None)
    assert summary["standard"]["specificity"] == 1.0
    assert "2 of 2 GT masks are empty" in printed


def test_segment_output_in_read_only_folder(tmp_path, capsys, stub_model, monkeypatch):
    """The PermissionError of a read-only parent (simulated: tests may run as root, who may write anywhere)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = _png(inputs / "a.png", _noise(64, 64))
    locked = tmp_path / "locked" / "out"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == locked or locked in self.parents or self == locked.parent:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    line = _one_line_error(capsys, ["segment", str(source), "-o", str(locked), "-q"], str(locked.parent), inputs)
    assert "Permission denied" in line
