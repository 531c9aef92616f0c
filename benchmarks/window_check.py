"""How the narrow-window note (``infnet.scan.slices2d.saturated_tissue_share``) separates lung windows.

    .venv/bin/python benchmarks/window_check.py

Prints, per window, the share of non-air pixels at >= 250 (median / min / max) and how many slices reach the
note's threshold (``SATURATED_SHARE``): for the 50 COVID-SemiSeg doctor-labelled slices (re-windowed through HU as
``benchmarks/robustness.py`` does) and for the real thorax ``ct-64`` exported as full-field-of-view 8-bit slices.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from infnet.data import semiseg
from infnet.data.presentation import uint8_to_hu, window_to_uint8
from infnet.io.images import list_images, read_gray
from infnet.scan.slices2d import SATURATED_SHARE, saturated_tissue_share

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lungmask_2d import DEFAULT_SCANS, exported_slices  # noqa: E402

WINDOWS = ((-430.0, 1400.0), (-600.0, 1500.0), (-500.0, 1600.0), (-600.0, 1200.0), (-700.0, 1000.0))


def main() -> int:
    root = semiseg.find_dataset()
    semiseg_hu = [uint8_to_hu(read_gray(p)) for p in list_images(root / semiseg.SPLITS["doctor-label"].image_dir)]
    thorax_hu = [hu for hu, _, _ in exported_slices(DEFAULT_SCANS[0])]
    print(f"share of non-air pixels at >= 250; the note is given from {SATURATED_SHARE:g}\n")
    print("| slices | window (level/width HU) | median | min | max | noted |")
    print("|---|---|---|---|---|---|")
    for name, slices in ((f"COVID-SemiSeg doctor-label ({len(semiseg_hu)})", semiseg_hu),
                         (f"ct-64 full FOV ({len(thorax_hu)})", thorax_hu)):  # fmt: skip
        for level, width in WINDOWS:
            share = np.array([saturated_tissue_share(window_to_uint8(hu, level, width)) for hu in slices])
            print(f"| {name} | {level:g}/{width:g} | {np.median(share):.2f} | {share.min():.2f} | {share.max():.2f} "
                  f"| {(share >= SATURATED_SHARE).mean():.0%} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
