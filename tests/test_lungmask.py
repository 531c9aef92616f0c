"""Classical lung mask: both lungs found, sides right, air outside the body / table / gas left out."""

from __future__ import annotations

import numpy as np
import pytest

from infnet.scan.lungmask import LEFT, RIGHT, classical_lung_mask, split_rows
from infnet.scan.preprocess import axial_view, superior_step, view_spacing
from infnet.scan.samples import bundled_samples, synthetic_chest_ct
from infnet.scan.volume_io import read_scan


def _mask(array, spacing, direction=None):
    d = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
    out = np.zeros(array.shape, np.uint8)
    notes = classical_lung_mask(
        axial_view(array, d), view_spacing(spacing, d), axial_view(out, d), superior_step=superior_step(d)
    )
    return out, notes


@pytest.mark.parametrize("touching", [False, True])
def test_phantom_two_lungs_on_the_right_sides(touching):
    hu, spacing = synthetic_chest_ct(touching=touching)
    lungs, _ = _mask(hu, spacing)
    voxel_ml = np.prod(spacing) / 1000.0
    right, left = (lungs == RIGHT), (lungs == LEFT)
    assert 600 < right.sum() * voxel_ml < 1400 and 600 < left.sum() * voxel_ml < 1400
    # Identity direction: columns run from the patient's right to left (a bridge is cut near the middle).
    mid = hu.shape[2] / 2
    assert np.nonzero(right)[2].max() <= mid + 2 and np.nonzero(left)[2].min() >= mid - 2
    assert np.nonzero(right)[2].mean() < 0.4 * hu.shape[2] < 0.6 * hu.shape[2] < np.nonzero(left)[2].mean()
    # Only air-filled lung tissue: nothing outside the body, on the table or in the trachea slices.
    assert not lungs[:, int(0.9 * hu.shape[1]) :, :].any()
    assert not lungs[:, :, :5].any() and not lungs[:, :5, :].any()
    assert not lungs[-2:].any()
    # Vessels inside the lungs are filled in.
    z = hu.shape[0] // 2
    inside = lungs[z] > 0
    assert ((hu[z] > -200) & inside).sum() > 0


def test_orientation_does_not_change_sides():
    hu, spacing = synthetic_chest_ct()
    ras = np.ascontiguousarray(hu[:, ::-1, ::-1])  # the same anatomy stored RAS (x and y flipped)
    lungs_ras, _ = _mask(ras, spacing, np.diag([-1.0, -1.0, 1.0]))
    lungs_lps, _ = _mask(hu, spacing)
    np.testing.assert_array_equal(lungs_ras[:, ::-1, ::-1], lungs_lps)


def test_no_lungs_in_abdomen_with_bowel_gas():
    hu, spacing = synthetic_chest_ct(lesions=False)
    hu = hu.copy()
    hu[hu < -500] = 40  # no lungs: fill them with tissue ...
    hu[:, :3, :] = -1000  # ... keep air outside the body
    hu[:, -3:, :] = -1000
    hu[:, 40:50, 40:55] = -1000  # pure-air pockets (gas) inside the body
    lungs, notes = _mask(hu, spacing)
    assert not lungs.any()
    assert any("no lung" in n for n in notes)


def test_split_rows_at_thinnest_point():
    mask = np.zeros((40, 20), bool)
    mask[2:18, 2:18] = True
    mask[22:38, 2:18] = True
    mask[18:22, 9:11] = True  # a thin bridge
    side = split_rows(mask, 20.0)
    assert (side[2:18][mask[2:18]] == RIGHT).all() and (side[22:38][mask[22:38]] == LEFT).all()


def test_real_ct_lungs(tmp_path, ct_samples):
    root = ct_samples
    vol = read_scan(root / "totalsegmentator" / "pulmonary_report_ct_cropped.nii.gz")
    lungs, _ = _mask(vol.array, vol.geometry.spacing3(), vol.geometry.direction3())
    ml = [(lungs == k).sum() * vol.geometry.voxel_ml for k in (RIGHT, LEFT)]
    assert all(500 < v < 2500 for v in ml)
    hu = np.asarray(vol.array)
    assert np.median(hu[lungs > 0]) < -600  # lung parenchyma, not soft tissue
    # The abdomen-only scan holds lung bases only, and its colon gas is not lung.
    small = read_scan(root / "totalsegmentator" / "example_ct_sm.nii.gz")
    lungs, _ = _mask(small.array, small.geometry.spacing3(), small.geometry.direction3())
    assert 0 < (lungs > 0).sum() * small.geometry.voxel_ml < 200


def test_intensity_mask_2d_on_bundled_slice():
    from infnet.io.images import read_gray
    from infnet.scan.slices2d import lung_mask_2d

    img = read_gray(bundled_samples() / "slices" / "semiseg_test_60.jpg")
    lungs, fov = lung_mask_2d(img)
    assert fov == "cropped" and 0.2 < (lungs > 0).mean() < 0.9
    # Training orientation: the right lung is in the upper rows.
    assert np.nonzero(lungs == RIGHT)[0].mean() < np.nonzero(lungs == LEFT)[0].mean()


def test_real_copd_thorax_matches_its_reference_lung_mask(ct_samples):
    """ChestImagingPlatform ct-64: emphysematous lungs (median -919 HU) and a foam pad under the patient (-900 HU
    at 4 mm) once made the mask empty, then took in the pad; its own wholeLung-64 mask is the reference."""
    import SimpleITK as sitk

    folder = ct_samples / "chestimagingplatform"
    scan = read_scan(folder / "ct-64.nrrd")
    lungs, notes = _mask(scan.array, scan.geometry.spacing3(), scan.geometry.direction)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "wholeLung-64.nrrd"))) > 0
    dice = 2 * ((lungs > 0) & ref).sum() / ((lungs > 0).sum() + ref.sum())
    assert notes == [] and dice > 0.98
    assert (lungs == RIGHT).sum() > 0.4 * ref.sum() and (lungs == LEFT).sum() > 0.4 * ref.sum()
    # Above the apices only the trachea is air inside the body (partial volume at 4 mm lifts its mean to
    # -800 HU): it is followed down from the top and dropped, as the reference does.
    empty = ~ref.any(axis=(1, 2))
    assert empty.sum() >= 3 and not lungs[empty].any()


def test_colon_gas_is_not_taken_for_emphysematous_lung(ct_samples):
    """TotalSegmentator's abdomen CT: its lungs are the top slices (its lobe map: 101-111); 783 mL of colon gas
    (median -943 HU) lower down must not pass as emphysema."""
    scan = read_scan(ct_samples / "totalsegmentator" / "example_ct.nii.gz")
    lungs, _ = _mask(scan.array, scan.geometry.spacing3(), scan.geometry.direction3())
    z = np.flatnonzero(lungs.any(axis=(1, 2)))
    assert z.min() >= 95 and 50 < (lungs > 0).sum() * scan.geometry.voxel_ml < 200
