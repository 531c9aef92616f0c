"""The 2D lung mask against the volume path's, on real CT exported as 8-bit PNG-like slices.

    .venv/bin/python benchmarks/lungmask_2d.py [--scans NRRD/NIfTI/DICOM ...] [--zoom 4]

Each real volume (default: the shared whole-thorax ChestImagingPlatform ct-64 and the DICOM lung-base slices) is
lung-masked by the volume path (``classical_lung_mask``); every slice with at least 1 cm^2 of lung is exported as
an 8-bit slice in three lung windows (-430/1400 the training one, -600/1500, -700/1000) and all 8 flips/rotations,
upsampled ``--zoom`` times when the scan is coarse (a PACS export is not 64 px wide), then masked by
:func:`infnet.scan.slices2d.lung_mask_2d`. Prints the mean Dice against the volume mask (lung vs not lung), the
share of slices called full field of view, how often :func:`detect_orientation` finds the orientation, and how
often a confident reading is wrong (what ``--slice-orientation auto`` would turn wrongly), how
often it reads the lungs' axis (side by side along rows or columns: what ``prepare_slice`` turns by) right, wrong
or not at all; the last also on the lung-cropped COVID-SemiSeg slices (5 val + 100 unlabelled) in 8 orientations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from infnet.data import semiseg
from infnet.data.presentation import dihedral, undo_dihedral, window_to_uint8
from infnet.io.images import list_images, read_gray
from infnet.scan.lungmask import classical_lung_mask
from infnet.scan.preprocess import axial_view, superior_step, view_spacing
from infnet.scan.slices2d import detect_orientation, lung_mask_2d
from infnet.scan.volume_io import read_scan

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared/data/ct-samples"
DEFAULT_SCANS = [SAMPLES / "chestimagingplatform/ct-64.nrrd", SAMPLES / "lungmask-lidc", SAMPLES / "dcmqi/ct-3slice"]
WINDOWS = ((-430.0, 1400.0), (-600.0, 1500.0), (-700.0, 1000.0))


def exported_slices(path: Path, zoom_to: int = 256):
    """(HU slice in training orientation, volume lung mask, whether it has >= 10 cm^2 of lung) for each lung
    slice, at about ``zoom_to`` px."""
    scan = read_scan(path)
    d = scan.geometry.direction3()
    view = axial_view(scan.array, d)
    spacing = view_spacing(scan.geometry.spacing3(), d)
    lungs = np.zeros(view.shape, np.uint8)
    classical_lung_mask(view, spacing, lungs, superior_step=superior_step(d))
    z = max(1.0, zoom_to / max(view.shape[1:]))
    for s in range(view.shape[0]):
        region = lungs[s] > 0
        if region.sum() * spacing[1] * spacing[2] < 100:
            continue
        hu = np.asarray(view[s], np.float32)
        big = region.sum() * spacing[1] * spacing[2] >= 1000
        if z > 1:
            hu, region = ndi.zoom(hu, z, order=1), ndi.zoom(region.astype(np.float32), z, order=1) >= 0.5
        yield hu, region, big


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", nargs="+", type=Path, default=DEFAULT_SCANS)
    args = ap.parse_args(argv)
    print("| scan | slices | windows x views | mean Dice | min Dice | full FOV | orientation found (confident) | "
          "confident but wrong | lungs' axis right / wrong / unsure |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    all_d, big_d = [], []
    for path in args.scans:
        dices, full, found, confident, wrong, n, axis = [], 0, 0, 0, 0, 0, [0, 0, 0]
        for hu, ref, big in exported_slices(path):
            n += 1
            for level, width in WINDOWS:
                grey = window_to_uint8(hu, level, width)
                for k in range(8):
                    shown = np.ascontiguousarray(dihedral(grey, k))
                    labels, fov = lung_mask_2d(shown)
                    full += fov == "full"
                    dices.append(dice(undo_dihedral(labels > 0, k), ref))
                    if big:
                        big_d.append(dices[-1])
                    o = detect_orientation(shown, labels)
                    found += o["k"] is not None and _inverse_ok(o["k"], k)
                    confident += o["confident"] and _inverse_ok(o["k"], k)
                    wrong += o["confident"] and not _inverse_ok(o["k"], k)
                    axis[_axis_outcome(o, k)] += 1
        m = len(dices)
        all_d += dices
        print(f"| {path.name} | {n} | {len(WINDOWS)} x 8 | {np.mean(dices):.3f} | {np.min(dices):.3f} | "
              f"{full / m:.0%} | {found / m:.0%} ({confident / m:.0%}) | {wrong} of {confident + wrong} | "
              f"{' / '.join(map(str, axis))} |")  # fmt: skip
    print(
        f"\nall slices: mean Dice {np.mean(all_d):.3f} over {len(all_d)} exported slices; slices with >= 10 cm^2 "
        f"of lung: {np.mean(big_d):.3f} over {len(big_d)}"
    )
    axis = [0, 0, 0]
    for img in _semiseg_slices():
        for k in range(8):
            axis[_axis_outcome(detect_orientation(np.ascontiguousarray(dihedral(img, k))), k)] += 1
    print(f"COVID-SemiSeg lung-cropped slices x 8 orientations: lungs' axis right {axis[0]}, wrong {axis[1]}, "
          f"unsure {axis[2]}")  # fmt: skip
    return 0


AXIS_KEEPING = (0, 2, 5, 7)  # dihedral elements that keep the lungs side by side along the rows


def _axis_outcome(found: dict, shown_k: int) -> int:
    """0: the lungs' axis read right, 1: wrong, 2: not read."""
    if found["axis"] is None:
        return 2
    return int((found["axis"] == "rows") != (shown_k in AXIS_KEEPING))


def _semiseg_slices():
    """The 5 validation slices and every 16th unlabelled slice (100) of COVID-SemiSeg (training layout)."""
    root = semiseg.find_dataset()
    val = set(semiseg.read_split_list(root, "val"))
    for p in list_images(root / semiseg.SPLITS["doctor-label"].image_dir):
        if p.stem in val:
            yield read_gray(p)
    for p in list_images(root / semiseg.SPLITS["pseudo-label"].image_dir)[:: semiseg.PSEUDO_HOLDOUT_STEP]:
        yield read_gray(p)


def _inverse_ok(found_k: int, shown_k: int) -> bool:
    """Whether ``found_k`` (image -> training) undoes the ``shown_k`` that made the image."""
    probe = np.arange(6).reshape(2, 3)
    return bool(np.array_equal(dihedral(dihedral(probe, shown_k), found_k), probe))


if __name__ == "__main__":
    raise SystemExit(main())
