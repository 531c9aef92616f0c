"""Lobes and the CT severity score: score bins, hand-computed maps, the real lobe maps in ct-samples, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from infnet.cli import main
from infnet.errors import InfnetError
from infnet.scan.lobes import LOBES, LobeMap, load_lobes, measure_lobes, parse_lobe_labels, severity_score
from infnet.scan.pipeline import segment_file
from infnet.scan.volume_io import read_scan
from test_segment import FakePredictor, phantom  # noqa: F401 - phantom is a fixture


@pytest.mark.parametrize(("pct", "score"), [(None, None), (0.0, 0), (0.01, 1), (4.99, 1), (5.0, 2), (25.0, 2),
                                            (25.01, 3), (49.99, 3), (50.0, 4), (75.0, 4), (75.01, 5), (100.0, 5)])
def test_severity_bins(pct, score):
    assert severity_score(pct) == score


def test_hand_computed_scores_and_total():
    lobes = np.repeat(np.arange(1, 6, dtype=np.uint8), 100).reshape(5, 10, 10)  # slice i = lobe i+1, 100 voxels
    mask = np.zeros_like(lobes)
    for i, n in enumerate((0, 3, 10, 40, 80)):  # % involved = n (100 voxels per lobe)
        mask[i].flat[:n] = 1 if i % 2 else 2  # both classes, to check the class split
    lungs = np.ones_like(lobes)
    out = measure_lobes(LobeMap(lobes, "synthetic", "lungmask"), mask, lungs, ("ggo", "consolidation"), 0.002)
    assert [out["lobes"][k]["percent_involved"] for k in LOBES] == [0.0, 3.0, 10.0, 40.0, 80.0]
    assert [out["lobes"][k]["score"] for k in LOBES] == [0, 1, 2, 3, 5]
    assert out["severity_score"] == 11 and out["complete"]
    assert out["lobes"]["RML"]["ggo_volume_ml"] == pytest.approx(0.006)  # 3 voxels x 0.002 mL
    assert out["lobes"]["RLL"]["consolidation_volume_ml"] == pytest.approx(0.02)
    assert out["lobes"]["RUL"]["lobe_volume_ml"] == pytest.approx(0.2)
    assert out["lung_outside_lobes_percent"] == 0.0 and out["infected_outside_lobes_ml"] == 0.0


def test_parse_lobe_labels():
    assert parse_lobe_labels(None) == (None, None)
    assert parse_lobe_labels("CIP")[1]["LLL"] == 8
    assert parse_lobe_labels("rul=7,LLL=9") == ("custom", {"RUL": 7, "LLL": 9})
    for bad in ("RUL:1", "XYZ=1", "RUL=1,RML=1"):
        with pytest.raises(InfnetError, match="lobe-labels"):
            parse_lobe_labels(bad)


def _counts(lobes: np.ndarray) -> list[int]:
    return [int(np.count_nonzero(lobes == i + 1)) for i in range(5)]


def test_totalsegmentator_file_and_folder(ct_samples, tmp_path):
    ts = ct_samples / "totalsegmentator"
    vol = read_scan(ts / "example_ct.nii.gz")
    seg_path = ts / "example_seg_fast_force_split.nii.gz"
    lm = load_lobes(seg_path, vol)
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(seg_path)))
    assert lm.scheme == "totalsegmentator"
    # RUL, RML, RLL, LUL, LLL = TotalSegmentator 12, 13, 14, 10, 11
    expected = [int(np.count_nonzero(raw == v)) for v in (12, 13, 14, 10, 11)]
    assert _counts(lm.array) == expected == [0, 0, 2590, 266, 1259]
    seg = sitk.ReadImage(str(seg_path))
    for value, stem in ((10, "lung_upper_lobe_left"), (11, "lung_lower_lobe_left"), (14, "lung_lower_lobe_right")):
        mask = sitk.Cast(seg == value, sitk.sitkUInt8)
        sitk.WriteImage(mask, str(tmp_path / f"{stem}.nii.gz"))
    folder = load_lobes(tmp_path, vol)
    assert np.array_equal(folder.array, lm.array) and folder.scheme == "totalsegmentator-files"
    assert any("lung_upper_lobe_right" in n for n in folder.notes)


def test_totalsegmentator_small_scan_scores(ct_samples):
    ts = ct_samples / "totalsegmentator"
    r = segment_file(FakePredictor(), ts / "example_ct_sm.nii.gz", lobes=ts / "example_seg.nii.gz")
    lobes = r.measurements["lobes"]
    assert lobes["lobes"]["RLL"]["lobe_volume_ml"] == pytest.approx(2735 * 27 / 1000)  # 3 mm voxels
    assert lobes["lobes"]["RUL"]["score"] is None and not lobes["complete"]
    assert lobes["severity_score"] == sum(e["score"] or 0 for e in lobes["lobes"].values())
    inf = sum(e["infected_volume_ml"] for e in lobes["lobes"].values()) + lobes["infected_outside_lobes_ml"]
    assert inf == pytest.approx(r.measurements["infection"]["volume_ml"]["total"], abs=1e-2)
    assert r.lobes is not None and r.lobes.shape == r.mask.shape
    outside = lobes["lung_outside_lobes_percent"]
    assert (outside > 20) == any("lies outside the lobe map" in n for n in r.notes)


def test_cip_lobe_map_resampled_onto_its_two_slices(ct_samples):
    cip = ct_samples / "chestimagingplatform"
    vol = read_scan(cip / "crop_ct_2slices.nrrd")
    lm = load_lobes(cip / "crop_ct_interactiveLobeSegmentation.nrrd", vol)
    assert lm.scheme == "cip" and lm.array.shape == vol.array.shape == (2, 349, 443)
    # the two CT slices are slices 60-61 of the 96-slice lobe map (z -102, -101.5 mm); codes 4-8 = RUL..LLL
    assert _counts(lm.array) == [39186, 21040, 17547, 52261, 26271]


def test_custom_labels_and_unknown_values(phantom, tmp_path):  # noqa: F811
    vol = read_scan(phantom)
    arr = np.zeros(vol.array.shape, np.uint8)
    arr[:5], arr[5:10], arr[10:12] = 7, 9, 3
    assert _counts(load_lobes(arr, vol, "RUL=7,RML=9,LLL=3").array) == [arr[:5].size, arr[5:10].size, 0, 0,
                                                                         arr[10:12].size]  # fmt: skip
    with pytest.raises(InfnetError, match="unknown lobe label.*9"):
        load_lobes(arr, vol, "RUL=7,LLL=3")
    with pytest.raises(InfnetError, match="cannot tell the lobe labels"):
        load_lobes(arr, vol)


def _write_like(arr: np.ndarray, ref: sitk.Image, path, shift: float = 0.0):
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(ref)
    img.SetOrigin(tuple(o + shift for o in ref.GetOrigin()))
    sitk.WriteImage(img, str(path))


def test_cli_lobes_report_and_bad_maps(phantom, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr("infnet.cli.segment.load_predictor", lambda *a, **kw: FakePredictor())
    ref = sitk.ReadImage(str(phantom))
    lobes = np.zeros(sitk.GetArrayViewFromImage(ref).shape, np.uint8)
    for i in range(5):  # lungmask codes 1-5 in z bands
        lobes[i * 6 : (i + 1) * 6] = i + 1
    _write_like(lobes, ref, tmp_path / "lobes.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", str(phantom), "-o", str(out), "-q", "--lobes", str(tmp_path / "lobes.nii.gz")]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["lobes"]["scheme"] == "lungmask" and 0 <= report["lobes"]["severity_score"] <= 25
    assert report["lobes"]["severity_score"] == sum(e["score"] for e in report["lobes"]["lobes"].values())
    assert "CT severity score" in (out / "report.html").read_text()
    capsys.readouterr()
    _write_like(lobes, ref, tmp_path / "far.nii.gz", shift=900.0)  # another region: refused
    lobes[0, 0, 0] = 200
    _write_like(lobes, ref, tmp_path / "odd.nii.gz")
    for args, msg in ((["--lobes", str(tmp_path / "far.nii.gz")], "covers another region"),
                      (["--lobes", str(tmp_path / "odd.nii.gz"), "--lobe-labels", "lungmask"], "unknown lobe label"),
                      (["--lobes", "lungmask"], "needs the 'lungmask' package"),
                      (["--lobe-labels", "cip"], "needs --lobes")):  # fmt: skip
        bad = tmp_path / "bad"
        assert main(["segment", str(phantom), "-o", str(bad), "-q", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err
        assert not bad.exists()  # nothing written
