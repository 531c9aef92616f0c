"""Presentation augmentation and fixed views: exact geometry, windows back and forth, full-FOV paste, training data."""

from __future__ import annotations

import numpy as np
import pytest

from infnet.data.presentation import (
    VALIDATION_VIEWS,
    VIEWS,
    PresentationAugment,
    View,
    dihedral,
    full_fov,
    uint8_to_hu,
    undo_dihedral,
    window_to_uint8,
)


def test_dihedral_covers_the_group_and_inverts():
    a = np.arange(12).reshape(3, 4)
    seen = {dihedral(a, k).tobytes() + bytes(dihedral(a, k).shape) for k in range(8)}
    assert len(seen) == 8
    for k in range(8):
        assert np.array_equal(undo_dihedral(dihedral(a, k), k), a)
    # k = 4 is the transpose: the radiological display of a COVID-SemiSeg slice.
    assert np.array_equal(dihedral(a, 4), a.T)


def test_rewindow_maps_hu_points_by_hand():
    hu = np.array([-1130.0, -430.0, 270.0])
    grey = window_to_uint8(hu)  # training window: level -430, width 1400
    assert grey.tolist() == [0, 128, 255]
    # grey 128 is -427.3 HU; in the -600/1500 window (-1350..150 HU): (922.7 / 1500) * 255 = 156.9 -> 157
    assert window_to_uint8(uint8_to_hu(grey), -600, 1500)[1] == 157


def test_full_fov_pastes_crop_and_masks_exactly():
    rng = np.random.default_rng(0)
    hu = np.full((60, 40), -850.0, np.float32)
    mask = np.zeros((60, 40), np.uint8)
    mask[10:20, 5:15] = 255
    canvas, (m,), box = full_fov(hu, [mask], rng, size=200, table=True, circle=True)
    assert canvas.shape == m.shape == (200, 200)
    assert np.array_equal(canvas[box], hu) and np.array_equal(m[box], mask) and m.sum() == mask.sum()
    assert canvas[0, 0] == -2048.0  # outside the reconstruction circle
    assert (canvas < -900).mean() > 0.3  # air around the body


def test_views_keep_mask_area_and_validation_views_are_named():
    img = np.random.default_rng(1).integers(0, 255, (50, 70), dtype=np.uint8)
    gt = np.zeros((50, 70), np.uint8)
    gt[5:25, 10:30] = 255
    for view in VIEWS:
        shown, m = view.apply(img, [gt], seed=3)
        assert shown.dtype == np.uint8 and (m > 127).sum() == (gt > 127).sum()
    # native: HU through the training window and back is the identity on 8-bit grey
    assert np.array_equal(View("native").apply(img, [gt])[0], img)
    assert {v.name for v in VALIDATION_VIEWS} == {"native", "rot90", "display (transpose)", "window -600/1500",
                                                 "full FOV 512"}  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_random_presentation_returns_matching_mask(seed):
    rng = np.random.default_rng(seed)
    hu = np.full((64, 48), 40.0, np.float32)
    hu[8:56, 4:20] = -850.0
    mask = np.zeros((64, 48), np.uint8)
    mask[20:30, 6:12] = 255
    grey, (m,) = PresentationAugment()(hu, [mask], rng)
    assert grey.dtype == np.uint8 and grey.shape == m.shape
    assert (m > 127).sum() == 60  # geometry only moves or pastes the mask, or crops at most 8 % per side


def test_window_extremes_pick_range_ends():
    from infnet.data.presentation import LEVEL_RANGE, WIDTH_RANGE

    hu = np.full((40, 40), -850.0, np.float32)
    aug = PresentationAugment(p_window=1.0, p_window_extremes=1.0, p_gamma=0, p_fov=0, p_crop=0, dihedral=False)
    allowed = {int(window_to_uint8(np.array([-850.0]), lv, w)[0]) for lv in LEVEL_RANGE for w in WIDTH_RANGE}
    rng = np.random.default_rng(0)
    seen = {int(aug(hu, [], rng)[0][0, 0]) for _ in range(40)}
    assert seen == allowed  # all four corners, nothing else
