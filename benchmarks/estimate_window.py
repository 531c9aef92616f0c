"""Estimate the display window (level/width in HU) of the COVID-SemiSeg training JPGs from their histograms.

The 8-bit slices were made from CT with an undocumented window. A linear window maps HU to grey as
``g = 255 * (HU - (level - width / 2)) / width`` (clipped), so three tissues of known HU fix it:

- air (-1000 HU): the trachea/main bronchi, found as dark regions enclosed by bright tissue;
- fat (about -100 HU) and soft tissue (about +40 HU: mediastinum, muscle, unenhanced blood): the two
  upper histogram peaks (fat is the lower shoulder of the soft-tissue peak, visible in about a third of slices).

The slices come from many patients and viewers, so each anchor is measured per image and the median taken;
a least-squares line through the three (HU, grey) medians gives level and width. Run::

    .venv/bin/python benchmarks/estimate_window.py [--split doctor-label]

The result is hard-coded in ``infnet.data.presentation`` (WINDOW_LEVEL, WINDOW_WIDTH).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import find_peaks

from infnet.data.semiseg import SPLITS, find_dataset
from infnet.io.images import list_images, read_gray

AIR_HU, FAT_HU, SOFT_HU = -1000.0, -100.0, 40.0


def image_anchors(img: np.ndarray) -> dict[str, float | None]:
    """Grey levels of air (enclosed dark blobs), fat and soft tissue (upper peaks) in one slice."""
    hist = np.bincount(img.ravel(), minlength=256).astype(float)
    hist = ndi.gaussian_filter1d(hist / hist.sum(), 2.0)
    out: dict[str, float | None] = {"air": None, "fat": None, "soft": None}
    # Soft tissue: the highest peak in the upper half, below the saturated bone bin.
    upper = slice(140, 250)
    soft = int(np.argmax(hist[upper])) + upper.start
    out["soft"] = float(soft)
    # Fat: a separate peak 10..45 grey levels below soft tissue.
    peaks, _ = find_peaks(hist, prominence=2e-4)
    fat = [p for p in peaks if soft - 45 <= p <= soft - 10]
    if fat:
        out["fat"] = float(max(fat, key=lambda p: hist[p]))
    # Air: dark blobs (trachea, bronchi) fully enclosed by soft tissue; their median grey level.
    smooth = ndi.uniform_filter(img.astype(np.float32), 5)
    bright = smooth > 150
    holes = ndi.binary_fill_holes(bright) & ~bright
    lab, n = ndi.label(holes)
    vals = []
    for i in range(1, n + 1):
        blob = lab == i
        if 30 < blob.sum() < 3000:
            core = ndi.binary_erosion(blob, iterations=2)
            if core.sum() > 10:
                vals.append(float(np.median(img[core])))
    # Only the darkest blob, and only when clearly darker than the lung peak (else it is a vessel gap).
    lung_peak = int(np.argmax(hist[:140]))
    if vals and min(vals) < lung_peak:
        out["air"] = min(vals)
    return out


def estimate(folder: Path) -> dict[str, float]:
    """Median anchors over the folder and the fitted window."""
    per = [image_anchors(read_gray(p)) for p in list_images(folder)]
    med = {}
    for key in ("air", "fat", "soft"):
        vals = [a[key] for a in per if a[key] is not None]
        med[key] = (
            float(np.median(vals)),
            float(np.percentile(vals, 25)),
            float(np.percentile(vals, 75)),
            len(vals),
        )
    hu = np.array([AIR_HU, FAT_HU, SOFT_HU])
    grey = np.array([med["air"][0], med["fat"][0], med["soft"][0]])
    slope, intercept = np.polyfit(hu, grey, 1)  # grey = slope * HU + intercept
    width = 255.0 / slope
    lower = -intercept / slope
    return {
        "n_images": len(per),
        **{f"{k}_grey_median_iqr_n": v for k, v in med.items()},
        "width": float(width),
        "level": float(lower + width / 2),
        "lower": float(lower),
        "upper": float(lower + width),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="doctor-label", choices=sorted(SPLITS))
    args = parser.parse_args()
    folder = find_dataset() / SPLITS[args.split].image_dir
    for key, value in estimate(folder).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
