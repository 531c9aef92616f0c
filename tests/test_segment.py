"""End-to-end segmentation with a fake slice predictor: masks, geometry, report, CLI errors, cohort, demo."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from infnet.cli import main
from infnet.scan.cohort import dist_rank, segment_cohort
from infnet.scan.outputs import write_outputs
from infnet.scan.pipeline import SlicePredictor, segment_array, segment_file
from infnet.scan.samples import bundled_samples, find_ct_samples, synthetic_chest_ct
from infnet.scan.volume_io import read_scan


class FakePredictor:
    """Thresholds grey levels: ground glass ~ grey 90-175 (about -640..-170 HU in the training window)."""

    def __init__(self, classes=("infection",)):
        self.classes = tuple(classes)
        self.name = "fake-" + "-".join(self.classes)
        self.shapes: list[tuple[int, ...]] = []

    def predict_proba(self, slices: np.ndarray) -> np.ndarray:
        assert slices.dtype == np.uint8 and slices.ndim == 3
        self.shapes.append(slices.shape)
        g = slices.astype(np.float32)
        ggo = (g >= 90) & (g <= 175)
        if len(self.classes) == 1:
            return ggo[:, None].astype(np.float32)
        consolidation = (g > 175) & (g <= 205)
        return np.stack([ggo, consolidation], axis=1).astype(np.float32)


@pytest.fixture
def phantom(tmp_path):
    hu, spacing = synthetic_chest_ct()
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing(spacing)
    img.SetOrigin((-160.0, -150.5, 30.25))
    img.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))  # RAS storage, as many NIfTI files
    path = tmp_path / "phantom.nii.gz"
    sitk.WriteImage(img, str(path))
    return path


@pytest.fixture
def fake(monkeypatch):
    predictor = FakePredictor()
    monkeypatch.setattr("infnet.cli.segment.load_predictor", lambda *a, **kw: predictor)
    return predictor


def _check_report(report: dict, qty: str):
    lung, inf = report["lung"][qty], report["infection"]
    assert inf[qty]["total"] <= lung["total"] + 1e-6
    for side in ("right", "left", "total"):
        pct = inf["percent_of_lung"][side]
        assert pct is None or 0.0 <= pct <= 100.0
    assert abs(inf[qty]["right"] + inf[qty]["left"] - inf[qty]["total"]) < 1e-3
    assert 0 <= inf["slices_with_infection"] <= inf["slices"] == len(report["per_slice"])
    assert "not for clinical diagnosis" in report["disclaimer"] and "non-commercial" in report["disclaimer"]


def test_volume_end_to_end(phantom, tmp_path):
    assert isinstance(FakePredictor(), SlicePredictor)
    result = segment_file(FakePredictor(("ggo", "consolidation")), phantom, probabilities=True)
    out = tmp_path / "out"
    files = write_outputs(result, out)
    assert {"mask", "lungs", "probability_ggo", "probability_consolidation"} <= set(files)
    ref = read_scan(phantom).geometry
    for name in ("mask.nii.gz", "lungs.nii.gz", "probability_ggo.nii.gz"):
        assert read_scan(out / name).geometry == ref  # size, spacing, origin, direction all equal
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "mask.nii.gz")))
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lungs.nii.gz")))
    assert mask.any() and not (mask[lungs == 0]).any()  # infection only inside the lungs
    # RAS storage: the array's x axis runs to the patient's right, so the right lung has the larger x.
    cols_right = np.nonzero(lungs == 1)[2].mean()
    assert cols_right > np.nonzero(lungs == 2)[2].mean()
    report = json.loads((out / "report.json").read_text())
    _check_report(report, "volume_ml")
    ggo, cons = report["classes"]["ggo"]["volume_ml"], report["classes"]["consolidation"]["volume_ml"]
    # The phantom was drawn for LPS but is stored RAS: its "right" lung lesion lies in the patient's left lung.
    # (The fake's resampled class maps also mark lesion and vessel borders where GGO + consolidation >= 0.5.)
    assert ggo["left"] > 20 and cons["right"] > 1 and ggo["left"] > 2 * ggo["right"]
    assert abs(ggo["total"] + cons["total"] - report["infection"]["volume_ml"]["total"]) < 1e-2
    assert report["model"]["mask_labels"] == {"1": "ggo", "2": "consolidation"}
    assert report["input"]["spacing"] == list(ref.spacing) and report["settings"]["window"]["width"] == 1400
    # what produced the maps: a predictor without these attributes reports the plain defaults
    assert report["settings"]["temperature"] == 1.0 and report["settings"]["tta"] == {"views": "none", "scales": [1.0]}
    html = (out / "report.html").read_text()
    assert "not for clinical diagnosis" in html and 'src="data:image/png;base64,' in html
    assert 'src="http' not in html and 'src="overlays' not in html
    assert list((out / "overlays").glob("slice_*.png"))
    prob = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "probability_ggo.nii.gz")))
    assert prob.dtype == np.uint8 and prob.max() == 255


def test_segment_array_api():
    hu, spacing = synthetic_chest_ct((20, 96, 96))
    result = segment_array(FakePredictor(), hu, spacing=spacing)
    assert result.infection_mask.shape == hu.shape and result.infection_mask.any()
    assert result.measurements["infection"]["volume_ml"]["right"] > 0


def test_real_samples_keep_geometry(tmp_path, ct_samples):
    root = ct_samples
    for src, exact in ((bundled_samples() / "chest_ct_crop.nii.gz", True), (root / "lungmask-lidc", False)):
        result = segment_file(FakePredictor(), src)
        write_outputs(result, tmp_path / src.name, overlays=False)
        ref, got = read_scan(src).geometry, read_scan(tmp_path / src.name / "mask.nii.gz").geometry
        assert got.size == ref.size
        if exact:
            assert got == ref
        else:  # DICOM geometry through NIfTI's float32 fields
            np.testing.assert_allclose(got.origin, ref.origin, atol=1e-4)
            np.testing.assert_allclose(got.spacing, ref.spacing, rtol=1e-6)
            np.testing.assert_allclose(got.direction, ref.direction, atol=1e-6)
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / src.name / "mask.nii.gz")))
        lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / src.name / "lungs.nii.gz")))
        assert lungs.any() and not mask[lungs == 0].any()
        _check_report(json.loads((tmp_path / src.name / "report.json").read_text()), "volume_ml")


def test_slices_folder_and_orientation(tmp_path):
    src = tmp_path / "slices"
    shutil.copytree(bundled_samples() / "slices", src)
    predictor = FakePredictor()
    result = segment_file(predictor, src, pixel_spacing=0.7)
    write_outputs(result, tmp_path / "out")
    for path in sorted(src.glob("*.jpg")):
        mask = np.asarray(Image.open(tmp_path / "out" / "masks" / f"{path.stem}.png"))
        assert mask.shape == np.asarray(Image.open(path)).shape and set(np.unique(mask)) <= {0, 255}
        assert (tmp_path / "out" / "overlays" / f"{path.stem}.png").is_file()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["units"] == {"area": "mm2"} and report["dimensionality"] == "2d"
    _check_report(report, "area_mm2")
    assert [r["name"] for r in report["per_slice"]] == sorted(p.stem for p in src.glob("*.jpg"))
    # Radiological slices are transposed for the model (input_size=0 keeps the crop shape): the sample in
    # radiological display (the transpose of its COVID-SemiSeg layout) reaches the model in that layout.
    one = np.asarray(Image.open(src / "semiseg_test_85.jpg").convert("L"))
    h, w = one.shape
    shown = tmp_path / "display.png"
    Image.fromarray(np.ascontiguousarray(one.T)).save(shown)
    p = FakePredictor()
    r = segment_file(p, shown, slice_orientation="radiological", input_size=0, lung_mask="none")
    assert p.shapes == [(1, h, w)] and r.settings["orientation"]["turned_lungs_one_above_other"] == 0
    # The COVID-SemiSeg layout stated as radiological would show the lungs one above the other: turned back a
    # quarter for the model, and said so.
    p = FakePredictor()
    r = segment_file(p, src / "semiseg_test_85.jpg", slice_orientation="radiological", input_size=0, lung_mask="none")
    assert p.shapes == [(1, h, w)] and r.settings["orientation"]["turned_lungs_one_above_other"] == 1
    assert any("one above the other" in n and "semiseg_test_85" in n for n in r.notes)


def test_cli_segment_ok_and_quiet(phantom, tmp_path, fake, capsys):
    assert main(["segment", str(phantom), "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "mL" in out and "slices with infection" in out
    assert main(["segment", str(phantom), "-o", str(tmp_path / "q"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_cli_segment_tta_reaches_the_predictor(phantom, tmp_path, monkeypatch):
    seen = {}

    def load(model, infection_model=None, tta=False, tta_scales=None, backend="auto"):
        seen.update(tta=tta, tta_scales=tta_scales, backend=backend)
        return FakePredictor()

    monkeypatch.setattr("infnet.cli.segment.load_predictor", load)
    out = str(tmp_path / "t")
    assert main(["segment", str(phantom), "-o", out, "--tta", "--tta-scales", "0.75", "1", "--quiet"]) == 0
    assert seen == {"tta": "mirror", "tta_scales": [0.75, 1.0], "backend": "auto"}
    assert main(["segment", str(phantom), "-o", out + "2", "--backend", "torch", "--quiet"]) == 0
    assert seen["backend"] == "torch" and seen["tta"] == "auto"  # default: dihedral on 2D slices, none on volumes
    assert main(["segment", str(phantom), "-o", out + "3", "--tta", "dihedral", "--quiet"]) == 0
    assert seen["tta"] == "dihedral"


def test_auto_tta_is_dihedral_on_slices_and_none_on_volumes(phantom, tmp_path):
    class Recording(FakePredictor):
        tta = "auto"

        def predict_proba(self, slices):
            self.seen = getattr(self, "seen", set()) | {self.tta}
            return super().predict_proba(slices)

    seg = Recording()
    png = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8)).save(png)
    r2d = segment_file(seg, png)
    assert seg.seen == {"dihedral"} and r2d.settings["tta"]["views"] == "dihedral"
    assert seg.tta == "auto"  # restored after the slices
    seg.seen = set()
    r3d = segment_file(seg, phantom)
    assert seg.seen == {"auto"} and r3d.settings["tta"]["views"] == "none"  # auto runs one view on volumes


def _dicom_with_modality(root, dest, modality):
    import pydicom

    dest.mkdir()
    for f in ("0.dcm", "1.dcm"):
        ds = pydicom.dcmread(root / "lungmask-lidc" / f)
        ds.Modality = modality
        ds.save_as(dest / f)
    return dest


def _sr_folder(dest):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dest.mkdir()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "SR", generate_uid(), generate_uid()
    ds.save_as(dest / "report.dcm", enforce_file_format=True)
    return dest


def test_cli_bad_inputs_one_line_exit_2(phantom, tmp_path, fake, capsys):
    root = find_ct_samples(required=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "notes.txt").write_text("hello")
    data = phantom.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.nii.gz").write_bytes(b"junk" * 100)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.int16), isVector=False), str(tmp_path / "4d.nii"))
    grey, _ = synthetic_chest_ct((8, 64, 64))
    sitk.WriteImage(sitk.GetImageFromArray(np.clip(grey + 1000, 0, 255).astype(np.uint8)), str(tmp_path / "g.nii"))
    cases = [
        ([str(tmp_path / "nope.nii.gz")], "no such file"),
        ([str(tmp_path / "empty")], "folder is empty"),
        ([str(tmp_path / "txt")], "no images"),
        ([str(tmp_path / "cut.nii.gz")], "truncated"),
        ([str(tmp_path / "junk.nii.gz")], "corrupt"),
        ([str(tmp_path / "4d.nii")], "4D volume"),
        ([str(tmp_path / "g.nii")], "--intensity 8bit"),
        ([str(_sr_folder(tmp_path / "sr"))], "no DICOM image series"),
        ([str(tmp_path / "txt"), "-o", str(tmp_path / "txt" / "out")], "inside it"),
        ([], "give either INPUT or --list"),
    ]
    if root is not None:
        cases.append(([str(_dicom_with_modality(root, tmp_path / "mr", "MR"))], "modality is MR"))
    for args, message in cases:
        argv = ["segment", *args] if "-o" in args else ["segment", *args, "-o", str(tmp_path / "out")]
        assert main(argv) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("infnet: error: ") and message in err and err.count("\n") == 1, (args, err)
    # The 8-bit volume goes through when declared as such.
    assert main(["segment", str(tmp_path / "g.nii"), "-o", str(tmp_path / "g"), "--intensity", "8bit", "-q"]) == 0


def test_cohort_manifest_resume_and_ranks(tmp_path, monkeypatch, fake, capsys):
    scans = []
    for i in range(3):
        hu, spacing = synthetic_chest_ct((12, 64, 64), seed=i)
        img = sitk.GetImageFromArray(hu)
        img.SetSpacing(spacing)
        path = tmp_path / f"d{i}" / "scan.nii.gz"  # same names in different folders
        path.parent.mkdir()
        sitk.WriteImage(img, str(path))
        scans.append(path)
    (tmp_path / "bad.nii.gz").write_bytes(b"junk")
    listing = tmp_path / "scans.txt"
    listing.write_text("# cohort\n" + "\n".join(str(p) for p in [*scans, tmp_path / "bad.nii.gz"]) + "\n")
    out = tmp_path / "cohort"
    s0 = segment_cohort(fake, scans, out, rank=0, world=2, overlays=False)
    assert s0["done"] == 2 and not s0["failed"]  # items 0 and 2
    assert main(["segment", "--list", str(listing), "-o", str(out), "-q"]) == 2
    assert "1 scan(s) failed" in capsys.readouterr().err
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    done = [e for e in lines if e["status"] == "done"]
    assert len(done) == 3 and len({e["id"] for e in done}) == 3
    assert [e["status"] for e in lines].count("failed") == 1
    assert all((out / e["id"] / "report.json").is_file() for e in done)
    again = segment_cohort(fake, scans, out)
    assert again["skipped"] == 3 and again["done"] == 0
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert dist_rank() == (1, 3)


def test_demo_runs_on_bundled_samples(tmp_path, fake, capsys):
    assert main(["demo", "-o", str(tmp_path / "demo"), "-q"]) == 0
    out = capsys.readouterr().out
    assert str((tmp_path / "demo").resolve()) in out
    for sub in ("chest_ct", "slices"):
        assert (tmp_path / "demo" / sub / "report.html").is_file()
    assert (tmp_path / "demo" / "chest_ct" / "mask.nii.gz").is_file()


def test_lungmask_package_option_is_wired(phantom, monkeypatch):
    from infnet.scan import lungmask as lm

    calls = []

    def fake_package(image):
        calls.append(image.GetSize())
        arr = sitk.GetArrayFromImage(image)
        return np.where(arr < -700, 1, 0).astype(np.uint8)

    monkeypatch.setattr(lm, "lungmask_package_available", lambda: True)
    monkeypatch.setattr(lm, "lungmask_package_mask", fake_package)
    result = segment_file(FakePredictor(), phantom)  # auto: the package when it is usable
    assert result.settings["lung_mask"] == "lungmask" and calls
    assert segment_file(FakePredictor(), phantom, lung_mask="classical").settings["lung_mask"] == "classical"


def test_default_model_is_the_robust_one_on_slices_only(phantom, tmp_path, monkeypatch):
    """Without --model: the robust models on 2D slices (unknown window/orientation), the defaults on volumes."""
    asked = []
    predictor = FakePredictor()
    monkeypatch.setattr("infnet.cli.segment.load_predictor", lambda model, *a, **kw: asked.append(model) or predictor)
    slices = tmp_path / "slices"
    slices.mkdir()
    shutil.copy(bundled_samples() / "slices" / "semiseg_test_60.jpg", slices / "a.jpg")
    assert main(["segment", str(slices), "-o", str(tmp_path / "o2d"), "-q"]) == 0
    assert main(["segment", str(phantom), "-o", str(tmp_path / "o3d"), "-q"]) == 0
    assert main(["segment", str(slices), "-o", str(tmp_path / "o2"), "-q", "--model", "infnet-effl2-semiseg"]) == 0
    assert asked == ["infnet-effl2-semi-robust-ens2-semiseg", "infnet-effl2-mixed-ens2-semiseg", "infnet-effl2-semiseg"]
    asked.clear()
    assert main(["demo", "-o", str(tmp_path / "demo"), "-q"]) == 0
    assert asked == ["infnet-effl2-mixed-ens2-semiseg", "infnet-effl2-semi-robust-ens2-semiseg"]  # volume, slices
    asked.clear()  # --multiclass: the window-robust FCN8s on slices, the density split on volumes and for --list
    assert main(["segment", str(slices), "-o", str(tmp_path / "m2d"), "-q", "--multiclass"]) == 0
    assert main(["segment", str(phantom), "-o", str(tmp_path / "m3d"), "-q", "--multiclass"]) == 0
    (listed := tmp_path / "list.txt").write_text(f"{phantom}\n")
    assert main(["segment", "--list", str(listed), "-o", str(tmp_path / "mc"), "-q", "--multiclass"]) == 0
    assert asked == ["fcn8s-effl2-robust-multiclass-semiseg", "density-split-multiclass-semiseg",
                     "density-split-multiclass-semiseg"]  # fmt: skip
