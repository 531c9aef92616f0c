"""2D slices as users have them: lung mask on full-FOV and cropped slices, orientation, the 2D pipeline path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi

from infnet.data.presentation import View, dihedral, undo_dihedral, window_to_uint8
from infnet.io.images import read_gray
from infnet.scan.lungmask import classical_lung_mask
from infnet.scan.preprocess import axial_view, superior_step, view_spacing
from infnet.scan.samples import bundled_samples
from infnet.scan.slices2d import detect_orientation, lung_mask_2d, orientation_summary, prepare_slice, widen_box
from infnet.scan.volume_io import read_scan


@pytest.fixture(scope="module")
def thorax(ct_samples):
    """Mid-lung slices of the real whole-thorax CT (training orientation, HU, x4 to 256 px) and their volume mask."""
    scan = read_scan(ct_samples / "chestimagingplatform" / "ct-64.nrrd")
    d = scan.geometry.direction3()
    view = axial_view(scan.array, d)
    lungs = np.zeros(view.shape, np.uint8)
    classical_lung_mask(view, view_spacing(scan.geometry.spacing3(), d), lungs, superior_step=superior_step(d))
    out = []
    for z in (30, 40, 45):
        out.append((ndi.zoom(np.asarray(view[z], np.float32), 4, order=1), ndi.zoom(lungs[z], 4, order=0) > 0))
    return out


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("k", range(8))
def test_full_fov_lung_mask_matches_volume_path_in_every_orientation(thorax, k):
    for hu, ref in thorax:
        for level, width in ((-600, 1500), (-430, 1400)):
            shown = np.ascontiguousarray(dihedral(window_to_uint8(hu, level, width), k))
            labels, fov = lung_mask_2d(shown)
            assert fov == "full"
            assert _dice(undo_dihedral(labels > 0, k), ref) > 0.93


def test_cropped_covid_slice_stays_cropped_and_keeps_border_lungs():
    img = read_gray(bundled_samples() / "slices" / "semiseg_test_76.jpg")
    labels, fov = lung_mask_2d(img)
    assert fov == "cropped"
    assert labels[0].any() or labels[-1].any() or labels[:, 0].any() or labels[:, -1].any()


def test_orientation_read_from_anatomy(thorax):
    hu, _ = thorax[0]  # slice 30: both lungs, the spine, the heart; the right lung 17 % larger
    grey = window_to_uint8(hu, -600, 1500)
    found = detect_orientation(grey)
    assert found["k"] == 0 and found["confident"]  # already in the training orientation
    for k in (1, 4, 6):  # the radiological display is k=4
        shown = np.ascontiguousarray(dihedral(grey, k))
        p = prepare_slice(shown, "auto")
        assert np.array_equal(p.image, grey)  # turned back
        assert p.restore(p.lungs).shape == shown.shape


AXIS_KEEPING = (0, 2, 5, 7)  # the dihedral elements that keep the lungs side by side along the rows


@pytest.mark.parametrize("k", range(8))
def test_lungs_one_above_the_other_are_turned_side_by_side(thorax, k):
    """Stated as the training layout but shown in any of the 8 orientations: the lungs' axis is read from the two
    lungs, and a slice showing them one above the other is turned a quarter; the others are left as stated."""
    sample = read_gray(bundled_samples() / "slices" / "semiseg_test_85.jpg")  # COVID-SemiSeg layout, cropped
    hu, _ = thorax[1]
    for img in (sample, window_to_uint8(hu, -600, 1500)):
        shown = np.ascontiguousarray(dihedral(img, k))
        p = prepare_slice(shown, "training")
        assert detect_orientation(shown)["axis"] == ("rows" if k in AXIS_KEEPING else "columns")
        assert p.turned == (k not in AXIS_KEEPING)
        # What the model sees is the slice in its own layout up to a mirror image, and it maps back.
        assert any(np.array_equal(p.image, np.ascontiguousarray(dihedral(img, j))) for j in AXIS_KEEPING)
        assert np.array_equal(p.restore(p.image), shown)


def test_report_says_which_slices_were_turned_and_why():
    confident = {"k": 1, "confident": True}
    unsure = {"k": None, "confident": False}
    out = orientation_summary("auto", [1, 4, 4], [confident, unsure, unsure], ["a", "b", "c"], [False] * 3)
    settings = out["settings"]
    assert settings["used"] == ["dihedral 1", "radiological"] and settings["turned_lungs_one_above_other"] == 0
    assert (settings["detected"]["disagrees"], settings["detected"]["unsure"]) == (1, 2)
    assert len(out["notes"]) == 1 and "1 slice(s) (a) were turned as their anatomy reads" in out["notes"][0]
    # Stated: a confident disagreement is a warning, a quarter turn its own note (not both for one slice).
    turned = {"k": 3, "confident": True}
    out = orientation_summary("radiological", [5, 4], [confident, turned], ["a", "b"], [False, True])
    assert out["settings"]["turned_lungs_one_above_other"] == 1 and len(out["notes"]) == 2
    notes = " | ".join(out["notes"])
    assert "(a) does not look radiological" in notes and "(b) showed their lungs one above" in notes


def test_degenerate_slices_give_empty_masks():
    for img in (np.zeros((1, 1), np.uint8), np.full((40, 40), 7, np.uint8)):
        labels, _ = lung_mask_2d(img)
        assert not labels.any()


def test_full_fov_slice_is_cut_to_its_lungs_for_the_model():
    """The 2D path's answer on a slice pasted into a 512 x 512 field of view equals its answer on the crop."""
    from infnet.inference import Segmenter
    from infnet.scan.pipeline import segment_slices
    from infnet.scan.volume_io import SliceSet

    img = read_gray(bundled_samples() / "slices" / "semiseg_test_60.jpg")
    gt = np.zeros(img.shape, np.uint8)
    big, m = View("fov", fov=True).apply(img, [gt], seed=0)
    seg = Segmenter.from_pretrained()
    res = segment_slices(seg, SliceSet(bundled_samples(), [img, big], ["crop", "fov"]), slice_orientation="training")
    assert res.settings["field_of_view"] == {"full": 1, "cropped": 1}
    crop_mask, fov_mask = res.mask
    r0, c0 = _paste_offset(big, img)
    inner = fov_mask[r0 : r0 + img.shape[0], c0 : c0 + img.shape[1]]
    assert fov_mask.sum() - inner.sum() < 0.01 * inner.sum()  # (almost) nothing on the synthetic body
    # the model sees (about) the original crop: the lungs' box found in the canvas overlaps it
    box = prepare_slice(big, "training").box
    found = np.zeros(big.shape, bool)
    found[box] = True
    pasted = np.zeros(big.shape, bool)
    pasted[r0 : r0 + img.shape[0], c0 : c0 + img.shape[1]] = True
    assert (found & pasted).sum() / (found | pasted).sum() > 0.7
    assert _dice(inner > 0, crop_mask > 0) > 0.7
    assert any("cut for the model to the box of their lungs and of the infection" in n for n in res.notes)


def test_box_grows_to_hold_infection_the_lung_mask_missed():
    """Dense infection is bright: a first pass over the body's box widens the lung box to hold it."""
    img = np.zeros((200, 200), np.uint8)  # air
    img[40:160, 30:170] = 200  # body (soft tissue)
    img[60:140, 50:95] = 30  # one lung, dark
    img[60:140, 105:150] = 200  # the other lung, consolidated: as bright as tissue
    p = prepare_slice(img, "training", pixel_mm=2.0, margin_mm=0.0)  # 2 mm pixels: lungs over the 80 mm minimum
    assert p.fov == "full"
    assert p.body == (slice(40, 160), slice(30, 170))
    assert p.box == (slice(60, 140), slice(50, 95))  # the intensity lung box holds the dark lung only
    infection = np.zeros(img.shape, bool)
    infection[70:130, 110:145] = True
    wide = widen_box(p, infection, 2.0, 2.0)  # margin 1 px
    assert wide.box == (slice(59, 141), slice(49, 146))
    nothing = replace(p, lungs=np.zeros_like(p.lungs))
    assert widen_box(nothing, np.zeros(img.shape, bool), 2.0, 2.0).box == p.body


def _paste_offset(big: np.ndarray, img: np.ndarray) -> tuple[int, int]:
    """Where ``img`` was pasted into ``big`` (exact match of a pixel row)."""
    row = img[img.shape[0] // 2]
    for r in range(big.shape[0] - img.shape[0] + 1):
        line = big[r + img.shape[0] // 2]
        for c in range(big.shape[1] - img.shape[1] + 1):
            if line[c] == row[0] and np.array_equal(line[c : c + img.shape[1]], row):
                return r, c
    raise AssertionError("crop not found in the canvas")


def test_pipeline_feeds_a_model_at_its_own_input_size():
    """A 448 model (the bundled Semi-Inf-Net) used to get 352 crops, upsampled again inside."""
    from infnet.scan.pipeline import segment_slices
    from infnet.scan.volume_io import SliceSet

    seen = []

    class Fake:
        name, classes, input_size = "fake", ("infection",), 448

        def predict_proba(self, slices):
            seen.append(slices.shape[1:])
            return np.zeros((len(slices), 1, *slices.shape[1:]), np.float32)

    img = read_gray(bundled_samples() / "slices" / "semiseg_test_60.jpg")
    res = segment_slices(Fake(), SliceSet(bundled_samples(), [img], ["a"]), slice_orientation="training")
    assert seen == [(448, 448)] and res.settings["input_size"] == 448


def test_narrow_window_is_noted_for_models_not_trained_for_it():
    """Soft tissue saturated at 255 means a window ending below it (-700/1000 HU ends at -200 HU): noted."""
    from infnet.inference import Segmenter
    from infnet.scan.pipeline import segment_slices
    from infnet.scan.slices2d import saturated_tissue_share
    from infnet.scan.volume_io import SliceSet

    half = np.zeros((20, 20), np.uint8)
    half[:, 10:] = 255
    assert saturated_tissue_share(half) == 1.0
    half[:, 15:] = 200
    assert saturated_tissue_share(half) == 0.5
    img = read_gray(bundled_samples() / "slices" / "semiseg_test_60.jpg")
    (narrow,) = View("narrow", window=(-700.0, 1000.0)).apply(img, [])
    assert saturated_tissue_share(img) < 0.7 <= saturated_tissue_share(narrow)
    seg = Segmenter.from_pretrained()
    res = segment_slices(seg, SliceSet(bundled_samples(), [img, narrow], ["a", "b"]), slice_orientation="training")
    assert res.settings["narrow_window_slices"] == 1
    assert any(n.startswith("1 of 2 slice(s) have their soft tissue saturated") for n in res.notes)
    robust = Segmenter.from_pretrained("infnet-effl2-robust-semiseg")
    res = segment_slices(robust, SliceSet(bundled_samples(), [narrow], ["b"]), slice_orientation="training")
    assert not any("saturated" in n for n in res.notes)


def test_narrow_window_note_names_the_robust_multiclass_model():
    """A multi-class model is robust only with a robust prior model: the robust FCN8s (with its registered prior)
    gets no note, the paper-recipe FCN8s gets one naming the robust FCN8s."""
    from infnet.inference import load_predictor
    from infnet.models import weights
    from infnet.scan.pipeline import segment_slices
    from infnet.scan.volume_io import SliceSet

    assert [n for n in weights.list_bundled() if weights.presentation_trained(n)] == [
        "fcn8s-effl2-robust-multiclass-semiseg", "infnet-effl2-robust-semiseg",
        "infnet-effl2-semi-robust-ens2-semiseg", "infnet-effl2-semi-robust-semiseg"]  # fmt: skip
    img = read_gray(bundled_samples() / "slices" / "semiseg_test_60.jpg")
    (narrow,) = View("narrow", window=(-700.0, 1000.0)).apply(img, [])
    for name, noted in (("fcn8s-effl2-multiclass-semiseg", True), ("fcn8s-effl2-robust-multiclass-semiseg", False)):
        res = segment_slices(load_predictor(name, tta="none"), SliceSet(bundled_samples(), [narrow], ["b"]),
                             slice_orientation="training")  # fmt: skip
        notes = [n for n in res.notes if "saturated" in n]
        assert bool(notes) == noted, name
        assert not notes or "fcn8s-effl2-robust-multiclass-semiseg is trained for it" in notes[0]
