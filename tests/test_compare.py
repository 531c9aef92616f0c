"""infnet compare: self-comparison is zero change, hand-made progression, lobes and score, patients, CLI errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from infnet.cli import main
from infnet.errors import InfnetError
from infnet.scan.compare import compare_scans
from test_segment import FakePredictor, phantom  # noqa: F401 - phantom is a fixture


def _changes(node):
    """Every value stored under a key containing 'change' (recursively)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if "change" in k and not isinstance(v, dict):
                yield k, v
            else:
                yield from _changes(v)


def _lobes_file(path, tmp_path):
    ref = sitk.ReadImage(str(path))
    lobes = np.zeros(sitk.GetArrayViewFromImage(ref).shape, np.uint8)
    for i in range(5):  # lungmask codes 1-5 in z bands
        lobes[i * 6 : (i + 1) * 6] = i + 1
    img = sitk.GetImageFromArray(lobes)
    img.CopyInformation(ref)
    sitk.WriteImage(img, str(tmp_path / "lobes.nii.gz"))
    return tmp_path / "lobes.nii.gz"


def test_self_comparison_is_zero_and_progression_is_measured(phantom, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr("infnet.cli.segment.load_predictor", lambda *a, **kw: FakePredictor())
    lobes = _lobes_file(phantom, tmp_path)
    seg_a = tmp_path / "a"
    assert main(["segment", str(phantom), "-o", str(seg_a), "-q", "--lobes", str(lobes)]) == 0
    # the same scan, compared with itself: from its segment folder and from the scan file
    data = compare_scans(seg_a, phantom, tmp_path / "self", predictor=FakePredictor())
    values = list(_changes(data["changes"]))
    assert len(values) > 50 and all(v in (0, 0.0, None) for _, v in values)
    assert data["changes"]["lungs"]["total"]["infected_volume_ml"]["change"] == 0.0
    assert data["changes"]["zones"]["upper"]["right"]["percent_involved"]["change"] == 0.0
    assert "lobes" not in data["changes"]  # the scan side has no lobes
    pairs = np.asarray(Image.open(tmp_path / "self" / "compare_slices.png").convert("RGB"))
    left, right = pairs[:, :320].astype(int), pairs[:, 320:].astype(int)
    caption = np.zeros(left.shape[:2], bool)
    for r in range(0, pairs.shape[0], 320):
        caption[r : r + 20] = True  # the captions differ ("baseline ..." / "follow-up ...")
    assert np.array_equal(left[~caption], right[~caption])  # same slices, same masks drawn
    assert (left[~caption] != 0).mean() > 0.3  # the tiles are pictures, not black squares
    assert [(m["baseline"], m["followup"]) for m in data["matched_slices"]] == [
        (m["baseline"], m["baseline"]) for m in data["matched_slices"]]  # fmt: skip
    # follow-up with a larger lesion: more infection, a higher score, slices matched
    img = sitk.ReadImage(str(phantom))
    hu = sitk.GetArrayFromImage(img)
    hu[10:22, 40:70, 80:100] = -500  # ground glass where the fake marks infection
    grown = sitk.GetImageFromArray(hu)
    grown.CopyInformation(img)
    sitk.WriteImage(grown, str(tmp_path / "followup.nii.gz"))
    seg_b = tmp_path / "b"
    assert main(["segment", str(tmp_path / "followup.nii.gz"), "-o", str(seg_b), "-q", "--lobes", str(lobes)]) == 0
    out = tmp_path / "cmp"
    capsys.readouterr()
    assert main(["compare", str(seg_a), str(seg_b), "-o", str(out)]) == 0
    assert "severity score change" in capsys.readouterr().out
    data = json.loads((out / "compare.json").read_text())
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (seg_a, seg_b))
    inf = data["changes"]["lungs"]["total"]["infected_volume_ml"]
    want = rb["infection"]["volume_ml"]["total"] - ra["infection"]["volume_ml"]["total"]
    assert inf["change"] == pytest.approx(want, abs=1e-3) and want > 1.0
    sev = data["changes"]["severity_score"]
    assert (sev["baseline"], sev["followup"]) == (ra["lobes"]["severity_score"], rb["lobes"]["severity_score"])
    assert data["changes"]["severity_score_change"] == sev["followup"] - sev["baseline"] >= 0
    for lobe, e in data["changes"]["lobes"].items():
        assert e["score"]["change"] == rb["lobes"]["lobes"][lobe]["score"] - ra["lobes"]["lobes"][lobe]["score"]
    html = (out / "compare.html").read_text()
    assert "Matched slices" in html and "data:image/png;base64," in html and (out / "compare_slices.png").is_file()


def _dicom_copy(src, dest, patient):
    dest.mkdir()
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ds.PatientID = patient
        ds.save_as(dest / f.name)
    return dest


def test_patients_and_bad_inputs(ct_samples, phantom, tmp_path, capsys):  # noqa: F811
    ct3 = ct_samples / "dcmqi" / "ct-3slice"
    a, b = _dicom_copy(ct3, tmp_path / "p1", "P1"), _dicom_copy(ct3, tmp_path / "p2", "P2")
    with pytest.raises(InfnetError, match="different patients: PatientID 'P1'.*'P2'"):
        compare_scans(a, b, tmp_path / "x", predictor=FakePredictor(), lung_mask="classical")
    assert not (tmp_path / "x").exists()
    seen = []
    data = compare_scans(a, b, tmp_path / "y", predictor=FakePredictor(), lung_mask="classical",
                         allow_different_patients=True, warn=seen.append)  # fmt: skip
    assert seen and data["warnings"] == seen and data["baseline"]["patient_id"] == "P1"
    for args, msg in (([str(phantom), str(tmp_path / "nope")], "no such file"),
                      ([str(tmp_path), str(phantom)], "inside it")):  # fmt: skip
        assert main(["compare", *args, "-o", str(tmp_path / "z" if "nope" in args[1] else tmp_path / "in")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err
    shutil.rmtree(tmp_path / "y")
