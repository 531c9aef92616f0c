"""Reading CT inputs (NIfTI, MHA/NRRD, DICOM, PNG), writing masks in the same geometry, orientation, HU checks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from infnet.errors import InfnetError
from infnet.scan.outputs import check_output_dir
from infnet.scan.preprocess import (
    axial_view,
    lung_box,
    resolve_intensity,
    uint8_to_hu,
    view_spacing,
    window_to_uint8,
)
from infnet.scan.samples import synthetic_chest_ct
from infnet.scan.volume_io import Geometry, SliceSet, Volume, read_scan, write_volume_like


def _image(array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def _same_geometry(a: Geometry, b: Geometry, exact: bool = True):
    assert a.size == b.size
    if exact:
        assert (a.spacing, a.origin, a.direction) == (b.spacing, b.origin, b.direction)
    else:  # NIfTI stores float32: DICOM geometry survives to ~1e-6 relative
        np.testing.assert_allclose(a.spacing, b.spacing, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a.origin, b.origin, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(a.direction, b.direction, atol=1e-6)


def test_nifti_roundtrip_keeps_geometry_exactly(ct_samples, tmp_path):
    for name in ("pulmonary_report_ct_cropped.nii.gz", "example_ct_sm.nii.gz"):
        vol = read_scan(ct_samples / "totalsegmentator" / name)
        assert isinstance(vol, Volume) and vol.format == "nifti"
        assert vol.array.shape == tuple(reversed(vol.geometry.size))
        mask = (np.asarray(vol.array) > 0).astype(np.uint8)
        write_volume_like(mask, vol.geometry, tmp_path / "m.nii.gz")
        back = read_scan(tmp_path / "m.nii.gz")
        _same_geometry(back.geometry, vol.geometry, exact=True)
        np.testing.assert_array_equal(back.array, mask)


def test_dicom_series_and_file(ct_samples, tmp_path):
    lidc = read_scan(ct_samples / "lungmask-lidc")
    assert lidc.format == "dicom-series" and lidc.array.shape == (2, 512, 512)
    assert lidc.modality == "CT"  # no Modality tag; taken from the CT SOP class
    assert lidc.array.min() == -2048  # rescale applied: HU
    write_volume_like(np.zeros(lidc.array.shape, np.uint8), lidc.geometry, tmp_path / "m.nii.gz")
    _same_geometry(read_scan(tmp_path / "m.nii.gz").geometry, lidc.geometry, exact=False)

    small = read_scan(ct_samples / "pydicom" / "CT_small.dcm")
    assert small.format == "dicom-file" and small.array.shape == (1, 128, 128) and small.modality == "CT"


def test_dicom_empty_series_uid_jpeg2000(ct_samples):
    vol = read_scan(ct_samples / "totalsegmentator" / "example_ct_dicom")
    assert vol.array.shape == (20, 512, 512)
    assert any("empty SeriesInstanceUID" in n for n in vol.notes)


def test_dicom_folder_with_several_series_takes_largest(ct_samples, tmp_path):
    for f in ("0.dcm", "1.dcm"):
        shutil.copy(ct_samples / "lungmask-lidc" / f, tmp_path / f"lidc_{f}")
    shutil.copy(ct_samples / "pydicom" / "CT_small.dcm", tmp_path / "small.dcm")
    vol = read_scan(tmp_path)
    assert vol.array.shape == (2, 512, 512)
    assert any("2 DICOM series found; using the largest" in n for n in vol.notes)


def test_mha_nrrd_and_2d_images(tmp_path):
    arr, spacing = synthetic_chest_ct((6, 40, 48))
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    for suffix in (".mha", ".nrrd"):
        path = tmp_path / f"v{suffix}"
        sitk.WriteImage(_image(arr, spacing, (1.5, -2.0, 3.25), direction), str(path))
        vol = read_scan(path)
        np.testing.assert_array_equal(vol.array, arr)
        assert vol.geometry.direction == direction and vol.geometry.spacing == spacing
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 40), dtype=np.uint8)).save(tmp_path / "a.png")
    one = read_scan(tmp_path / "a.png")
    assert isinstance(one, SliceSet) and one.images[0].shape == (48, 40) and one.names == ["a"]
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, size in enumerate([(48, 40), (40, 56)]):
        Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(folder / f"s{i}.png")
    many = read_scan(folder)
    assert many.format == "image-folder" and [im.shape for im in many.images] == [(48, 40), (40, 56)]


def _bad_input(root, kind):
    if kind == "missing":
        return root / "missing.nii.gz"
    path = root / kind
    if kind in ("empty", "text-folder"):
        path.mkdir()
        if kind == "text-folder":
            (path / "a.txt").write_text("not an image")
    elif kind == "bad.nii.gz":
        path.write_bytes(b"\x1f\x8bnot really gzip")
    else:
        path.write_text("x")
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "no such file or folder"),
        ("empty", "folder is empty"),
        ("text-folder", "no images"),
        ("bad.nii.gz", "corrupt"),
        ("x.xyz", "unsupported file type"),
    ],
)
def test_bad_inputs_raise_one_line(tmp_path, kind, message):
    with pytest.raises(InfnetError, match=message) as info:
        read_scan(_bad_input(tmp_path, kind))
    assert "\n" not in str(info.value)


def test_truncated_nifti_and_4d(ct_samples, tmp_path):
    data = (ct_samples / "totalsegmentator" / "example_ct_sm.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InfnetError, match="corrupt or truncated"):
        read_scan(tmp_path / "cut.nii.gz")
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.int16), isVector=False), str(tmp_path / "4d.nii.gz")
    )
    with pytest.raises(InfnetError, match="4D volume"):
        read_scan(tmp_path / "4d.nii.gz")


def test_intensity_checks():
    hu, _ = synthetic_chest_ct((4, 32, 32))
    assert resolve_intensity(hu, "CT", "auto", "x") == "hu"
    with pytest.raises(InfnetError, match="--intensity 8bit"):
        resolve_intensity(window_to_uint8(hu), None, "auto", "x")
    with pytest.raises(InfnetError, match="not Hounsfield"):
        resolve_intensity((hu + 1024).astype(np.uint16), None, "auto", "x")
    with pytest.raises(InfnetError, match="modality is MR"):
        resolve_intensity(hu, "MR", "auto", "x")
    assert resolve_intensity(hu, "MR", "hu", "x") == "hu"
    grey = window_to_uint8(np.array([-1130.0, -430.0, 270.0, 2000.0]))
    np.testing.assert_array_equal(grey, [0, 128, 255, 255])
    np.testing.assert_allclose(uint8_to_hu(grey[:3]), [-1130.0, -430.0, 270.0], atol=3)


def test_axial_view_is_orientation_invariant():
    rng = np.random.default_rng(0)
    lps = rng.integers(-1000, 100, (5, 7, 9)).astype(np.int16)  # (z, y=A->P, x=R->L)
    eye = np.eye(3)
    ref = axial_view(lps, eye)
    np.testing.assert_array_equal(ref, lps.transpose(0, 2, 1))  # rows R->L, cols A->P
    # RAS-stored (x, y flipped): same anatomy, same view.
    ras = lps[:, ::-1, ::-1]
    np.testing.assert_array_equal(axial_view(ras, np.diag([-1.0, -1.0, 1.0])), ref)
    # Index axes permuted: array (z, x, y) with i along y and j along x.
    perm = lps.transpose(0, 2, 1)
    d = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(axial_view(perm, d), ref)
    assert view_spacing((0.5, 0.7, 2.0), d) == (2.0, 0.7, 0.5)
    # Writing through the view writes the stored layout.
    out = np.zeros_like(ras)
    axial_view(out, np.diag([-1.0, -1.0, 1.0]))[:] = ref
    np.testing.assert_array_equal(out, ras)


def test_lung_box_margin_and_minimum():
    region = np.zeros((200, 200), bool)
    region[50:150, 40:160] = True
    rows, cols = lung_box(region, (1.0, 1.0), margin_mm=3.0, min_mm=10.0)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (47, 153, 37, 163)
    tiny = np.zeros((200, 200), bool)
    tiny[100:102, 0:2] = True
    rows, cols = lung_box(tiny, (1.0, 1.0), margin_mm=0.0, min_mm=80.0)
    assert rows.stop - rows.start == 80 and cols.start == 0 and cols.stop == 80
    assert lung_box(np.zeros((5, 5), bool), (1.0, 1.0)) is None


def test_output_folder_must_not_be_input(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(InfnetError, match="inside it"):
        check_output_dir(tmp_path / "in", tmp_path / "in" / "out")
    with pytest.raises(InfnetError, match="inside it"):
        check_output_dir(tmp_path / "in", tmp_path / "in")
    assert check_output_dir(tmp_path / "in", tmp_path / "out") == (tmp_path / "out").resolve()


def test_dicom_seg_files_beside_a_series_are_not_taken_for_it(ct_samples):
    """dcmqi/ holds two DICOM SEG files at its root and the CT they reference in ct-3slice/."""
    vol = read_scan(ct_samples / "dcmqi")
    assert vol.array.shape == (3, 512, 512) and vol.format == "dicom-series"
