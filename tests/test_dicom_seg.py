"""DICOM SEG (highdicom) for DICOM inputs: read back, references, frame-to-slice mapping, pixels = NIfTI masks."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from infnet import __version__
from infnet.cli import main
from infnet.scan.outputs import write_outputs
from infnet.scan.pipeline import segment_file
from test_segment import FakePredictor, phantom  # noqa: F401 - phantom is a fixture

hd = pytest.importorskip("highdicom")


class LungFake(FakePredictor):
    """Marks dark lung parenchyma (and, multi-class, a brighter band) so every segment has voxels."""

    def predict_proba(self, slices):
        g = slices.astype(np.float32)
        inf = (g >= 20) & (g < 70)
        if len(self.classes) == 1:
            return inf[:, None].astype(np.float32)
        return np.stack([inf & (g < 45), inf & (g >= 45)], axis=1).astype(np.float32)


def _sources(folder):
    """(SOPInstanceUID per stored slice k, SeriesInstanceUID): slices sorted along z like SimpleITK."""
    dss = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir()) if p.suffix == ".dcm"]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return [d.SOPInstanceUID for d in dss], dss[0].SeriesInstanceUID


@pytest.mark.parametrize("classes", [("infection",), ("ggo", "consolidation")])
def test_seg_reads_back_and_matches_nifti(ct_samples, tmp_path, classes):
    folder = ct_samples / "chestimagingplatform" / "ct-64Dicom"
    result = segment_file(LungFake(classes), folder)
    # known masks (the classical lung mask is not under test here): lungs in slices 20-59, infection in some of it
    n = len(classes)
    result.lungs[...] = 0
    result.lungs[20:60, 16:48, 8:32], result.lungs[20:60, 16:48, 32:56] = 1, 2
    result.mask[...] = 0
    result.mask[30:40, 20:30, 10:50] = 1
    result.mask[35:45, 25:35, 40:50] = n
    out = tmp_path / "out"
    files = write_outputs(result, out, overlays=False)
    assert files["dicom_seg"] == "seg.dcm"
    seg = hd.seg.segread(out / "seg.dcm")
    sops, series = _sources(folder)
    assert len(sops) == 79
    assert seg.Modality == "SEG" and seg.SeriesInstanceUID != series
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series
    refs = {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert refs == set(sops)
    labels = [d.SegmentLabel for d in seg.SegmentSequence]
    want = ["Lung infection"] if n == 1 else ["Ground-glass opacity", "Consolidation"]
    assert labels == [*want, "Right lung", "Left lung"]
    algo = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmName == "infnet" and algo.AlgorithmVersion == __version__
    assert result.model in algo.AlgorithmParameters and seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert seg.SegmentSequence[n].SegmentedPropertyTypeCodeSequence[0].CodeValue == "3341006"  # right lung
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "mask.nii.gz")))
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lungs.nii.gz")))
    assert mask.any() and (mask == n).any() and lungs.any()
    # each frame references its CT instance: pixels per source instance equal that slice of the NIfTI masks
    got = seg.get_pixels_by_source_instance(source_sop_instance_uids=sops, segment_numbers=list(range(1, n + 3)))
    assert got.shape == (79, 64, 64, n + 2)
    for c in range(n):
        assert np.array_equal(got[..., c], mask == c + 1)
    assert np.array_equal(got[..., n], lungs == 1) and np.array_equal(got[..., n + 1], lungs == 2)
    report = json.loads((out / "report.json").read_text())
    assert report["input"]["dicom"]["series_instance_uid"] == series and report["input"]["dicom"]["patient_id"]


def test_seg_on_three_slice_series_and_cli_flags(ct_samples, phantom, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr("infnet.cli.segment.load_predictor", lambda *a, **kw: LungFake())
    ct3 = ct_samples / "dcmqi" / "ct-3slice"
    assert main(["segment", str(ct3), "-o", str(tmp_path / "a"), "-q"]) == 0
    seg = hd.seg.segread(tmp_path / "a" / "seg.dcm")
    sops, series = _sources(ct3)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a" / "lungs.nii.gz")))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a" / "mask.nii.gz")))
    got = seg.get_pixels_by_source_instance(source_sop_instance_uids=sops, segment_numbers=[1, 2, 3])
    assert np.array_equal(got[..., 0], mask == 1)
    assert np.array_equal(got[..., 1], lungs == 1) and np.array_equal(got[..., 2], lungs == 2)
    assert main(["segment", str(ct3), "-o", str(tmp_path / "b"), "-q", "--no-dicom-seg"]) == 0
    assert not (tmp_path / "b" / "seg.dcm").exists() and (tmp_path / "b" / "report.json").exists()
    # LIDC slices without a FrameOfReferenceUID: skipped with a note by default, an error when forced
    lidc = ct_samples / "lungmask-lidc"
    assert main(["segment", str(lidc), "-o", str(tmp_path / "d"), "-q"]) == 0
    assert not (tmp_path / "d" / "seg.dcm").exists()
    assert any("no DICOM SEG written" in n for n in json.loads((tmp_path / "d" / "report.json").read_text())["notes"])
    capsys.readouterr()
    for src, msg in ((phantom, "--dicom-seg needs a DICOM input"), (lidc, "no FrameOfReferenceUID")):
        assert main(["segment", str(src), "-o", str(tmp_path / "c"), "-q", "--dicom-seg"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err
        assert not (tmp_path / "c").exists()
