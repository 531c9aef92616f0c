"""Lung masks without learned weights: a classical HU-threshold method for volumes, an intensity one for 2D.

Volume method (on the training-oriented view, see :func:`infnet.scan.preprocess.axial_view`):

1. work at about 1.5 mm in-plane (block mean), which bounds memory and time for 1000-slice scans;
2. air = HU < -400, opened slightly; per slice, air regions touching the image border are outside the body
   (and the gap above the table) unless the median HU of their core (2 px in from the edge) is above -950,
   which lung parenchyma is but room air (about -1000) is not: that keeps lungs cut by a small field of view;
   thin border regions without a core (the gap between body and table, blurred to -900 HU) are outside;
3. 3D connected components: drop pure-air ones (bowel and stomach gas: median below -960 HU, or below -910 HU
   for regions under 1500 mL; emphysematous lungs have medians of -920 to -950 HU but are large), keep at most
   the two largest, each at least 20 mL (less for scans under 5 cm long) and 15% of the largest; when the
   largest is enclosed by the body (a full field of view), none that touches the image border in most of its
   slices (a foam pad under the patient reads -900 HU, like lung); small,
   very dark regions near the midline (trachea) are removed slice by slice;
4. split right/left: two 3D components, separated by in-plane erosion when they touch (see :func:`split_sides`);
5. per lung and slice: closing (6 mm) and hole filling to take in vessels, airway walls and small dense lesions;
6. back to full resolution by bilinear upsampling of each lung's mask.

Labels: 0 background, 1 right lung, 2 left lung (the ``lungmask`` package convention). Large peripheral
consolidations can fall outside such a threshold mask; the pipeline adds predicted infection next to the lung.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from infnet.errors import InfnetError

AIR_HU = -400.0
OUTSIDE_AIR_MEDIAN_HU = -950.0
MIN_LUNG_ML = 20.0
GAS_MEDIAN_HU = -910.0
PURE_AIR_MEDIAN_HU = -960.0
# A region this large with a median of -960..-910 HU is emphysematous lung, not gas (colon gas: 783 mL in
# TotalSegmentator's example_ct; the COPDGene lungs of ct-64: 4585 mL).
EMPHYSEMA_MIN_ML = 1500.0
CLOSING_MM = 6.0
RIGHT, LEFT = 1, 2


def disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def close_fill(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing that does not erode at the border (pad first), then hole filling; works in the mask's box."""
    if not mask.any():
        return mask
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    sub = np.pad(mask[box], radius + 1)
    if radius > 0:
        sub = ndi.binary_closing(sub, disk(radius))
    out = np.zeros_like(mask)
    out[box] = ndi.binary_fill_holes(sub)[radius + 1 : -(radius + 1), radius + 1 : -(radius + 1)]
    return out


def _downsample(block: np.ndarray, f: int) -> np.ndarray:
    """Block mean of (n, R, C) by f in-plane (edge-padded to a multiple of f)."""
    if f == 1:
        return np.asarray(block, dtype=np.float32)
    n, r, c = block.shape
    pr, pc = (-r) % f, (-c) % f
    arr = np.asarray(block, dtype=np.float32)
    if pr or pc:
        arr = np.pad(arr, ((0, 0), (0, pr), (0, pc)), mode="edge")
    return arr.reshape(n, (r + pr) // f, f, (c + pc) // f, f).mean(axis=(2, 4))


def _inside_air(hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Air in one slice that is not outside the body, and the part of it that touches the image border (see
    module doc, step 2)."""
    air = ndi.binary_opening(hu < AIR_HU, disk(1))
    lab, n = ndi.label(air)
    if n == 0:
        return air, air
    total = np.bincount(lab.ravel(), minlength=n + 1)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    border = border[border > 0]
    if border.size:
        # Judged on each region's core (2 px in from its edge): a thin band of air between body and table reads
        # -900 HU by partial volume and has no core. median < -950 HU <=> more than half of the core is below.
        core = np.where(ndi.binary_erosion(air, disk(2)), lab, 0)
        below = np.bincount(core[hu < OUTSIDE_AIR_MEDIAN_HU], minlength=n + 1)
        n_core = np.bincount(core.ravel(), minlength=n + 1)
        air &= ~np.isin(lab, border[(2 * below[border] > n_core[border]) | (n_core[border] < 0.2 * total[border])])
    return air, air & np.isin(lab, border)


def split_rows(mask: np.ndarray, midline: float) -> np.ndarray:
    """Label one slice's lung pixels right (1) / left (2); rows run from the patient's right to left."""
    out = np.zeros(mask.shape, np.uint8)
    lab, n = ndi.label(mask)
    if n == 0:
        return out
    rows = np.arange(mask.shape[0])[:, None]
    band = max(2, int(0.15 * mask.shape[0]))
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        r = rows[sl[0]]
        below = (comp & (r < midline)).sum()
        above = comp.sum() - below
        if min(below, above) > 0.15 * comp.sum():  # the two lungs touch: cut at the thinnest row
            lo, hi = max(sl[0].start, int(midline) - band), min(sl[0].stop, int(midline) + band)
            counts = comp.sum(axis=1)[lo - sl[0].start : hi - sl[0].start]
            cut = lo + int(np.argmin(counts)) if counts.size else int(midline)
            out[sl][comp & (r < cut)] = RIGHT
            out[sl][comp & (r >= cut)] = LEFT
        else:
            out[sl][comp] = RIGHT if below >= above else LEFT
    return out


def classical_lung_mask(
    view: np.ndarray, spacing: tuple[float, float, float], out: np.ndarray,
    to_hu: Callable[[np.ndarray], np.ndarray] | None = None, chunk: int = 32, superior_step: int = 0,
) -> list[str]:  # fmt: skip
    """Fill ``out`` (uint8, same shape as ``view``; usually a view on the output volume) with lung labels.

    ``view``: (slice, row, col) in the training orientation (rows right->left); ``spacing`` (mm) per view axis;
    ``to_hu`` converts stored values to HU (for 8-bit volumes); ``superior_step`` (+1/-1: the slice index grows
    towards the head / the feet, :func:`infnet.scan.preprocess.superior_step`; 0: unknown) lets the trachea be
    followed down from the apices. Returns notes for the report.
    """
    n_slices, n_rows, n_cols = view.shape
    _, sr, sc = spacing
    f = max(1, min(int(round(1.5 / min(sr, sc))), min(n_rows, n_cols) // 64, 4))
    rr, rc = -(-n_rows // f), -(-n_cols // f)
    small_hu = np.empty((n_slices, rr, rc), np.int16)
    cand = np.zeros((n_slices, rr, rc), bool)
    at_border = np.zeros((n_slices, rr, rc), bool)
    for z0 in range(0, n_slices, chunk):
        block = view[z0 : z0 + chunk]
        block = to_hu(block) if to_hu else block
        small = _downsample(block, f)
        small_hu[z0 : z0 + chunk] = np.clip(small, -32768, 32767).astype(np.int16)
        for k in range(small.shape[0]):
            cand[z0 + k], at_border[z0 + k] = _inside_air(small[k])
    voxel_ml = sr * f * sc * f * spacing[0] / 1000.0
    lab, n = ndi.label(cand)
    del cand
    notes: list[str] = []
    if n == 0:
        out[...] = 0
        return ["no air-filled region inside the body: lung mask is empty"]
    sizes = np.bincount(lab.ravel())[1:] * voxel_ml
    # Pure-air regions (bowel and stomach gas, an isolated trachea) have a median near -1000 HU; lungs do not,
    # except emphysematous ones (the shared COPDGene scan: -919 HU), which are told apart by their size.
    gas = np.bincount(lab[small_hu < GAS_MEDIAN_HU], minlength=n + 1)[1:]  # median below -910 HU <=> gas > 50%
    air = np.bincount(lab[small_hu < PURE_AIR_MEDIAN_HU], minlength=n + 1)[1:]
    gas = np.where(sizes >= EMPHYSEMA_MIN_ML, air, gas)
    biggest = [int(i) + 1 for i in np.argsort(sizes)[::-1][:10]]
    lung_like = [i for i in biggest if 2 * gas[i - 1] * voxel_ml <= sizes[i - 1]]
    # In a scan whose largest lung-like region is enclosed by the body (full field of view), a region that
    # touches the image border in most of its slices is not lung cut by the field of view but air outside the
    # body that passed the per-slice tests (a foam pad under the patient, -900 HU).
    edge = np.bincount(lab[at_border], minlength=n + 1)[1:] * voxel_ml / np.maximum(sizes, 1e-9)
    del at_border
    if lung_like and edge[lung_like[0] - 1] < 0.2:
        lung_like = [i for i in lung_like if edge[i - 1] <= 0.5]
    # A few slices hold only a thin section of the lungs: scale the minimum with the scan length.
    min_ml = MIN_LUNG_ML * min(1.0, n_slices * spacing[0] / 50.0)
    first = sizes[lung_like[0] - 1] if lung_like else 0.0
    keep = [i for i in lung_like[:2] if sizes[i - 1] >= min_ml and sizes[i - 1] >= 0.15 * first]
    if not keep:
        out[...] = 0
        return [f"no lung found (largest lung-like air region inside the body {first:.1f} mL < {min_ml:.3g} mL)"]
    lungs = np.isin(lab, keep)
    del lab
    rows_any = np.flatnonzero(lungs.any(axis=(0, 2)))
    midline = (rows_any[0] + rows_any[-1]) / 2.0
    trachea_px = 600.0 / (sr * f * sc * f)  # 6 cm^2
    with_lung = np.flatnonzero(lungs.any(axis=(1, 2)))
    for z in with_lung:
        lungs[z] = _drop_trachea(lungs[z], small_hu[z], midline, trachea_px)
    if superior_step:
        _drop_airway_tube(lungs, with_lung[::-1] if superior_step > 0 else with_lung, midline, trachea_px)
    del small_hu
    side, notes = split_sides(lungs, (spacing[0], sr * f, sc * f), midline)
    del lungs
    radius = max(1, int(round(CLOSING_MM / (min(sr, sc) * f))))
    for z in with_lung:
        r_mask, l_mask = close_fill(side[z] == RIGHT, radius), close_fill(side[z] == LEFT, radius)
        side[z] = np.where(r_mask, RIGHT, np.where(l_mask, LEFT, 0))
    for z in range(n_slices):
        out[z] = upsample_labels(side[z], f, (n_rows, n_cols)) if side[z].any() else 0
    return notes


def _two_largest(mask: np.ndarray, min_ratio: float = 0.15) -> tuple[np.ndarray, np.ndarray] | None:
    """The two largest 3D components when the smaller is at least ``min_ratio`` of the larger."""
    lab, n = ndi.label(mask)
    if n < 2:
        return None
    sizes = np.bincount(lab.ravel())[1:]
    a, b = np.argsort(sizes)[::-1][:2] + 1
    if sizes[b - 1] < min_ratio * sizes[a - 1]:
        return None
    return lab == a, lab == b


def nearest_label(mask: np.ndarray, ref: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """Give each pixel of ``mask`` the label of the nearest labelled pixel of ``ref``."""
    idx = ndi.distance_transform_edt(ref == 0, sampling=sampling, return_distances=False, return_indices=True)
    return np.where(mask, ref[idx[0], idx[1]], 0).astype(np.uint8)


def split_sides(
    lungs: np.ndarray, spacing: tuple[float, float, float], midline: float, max_erode_mm: float = 12.0
) -> tuple[np.ndarray, list[str]]:
    """Right (1) / left (2) labels for a (slice, row, col) lung mask; rows run from the patient's right to left.

    Seeds are the two lungs as separate 3D components, found by in-plane erosion (up to ``max_erode_mm``) when
    they touch (junction lines, bronchi). Each slice's lung pixels take the label of the nearest seed; slices
    without both seeds (apex, base) take it from the nearest labelled slice. Without two seeds the split is
    per slice at the thinnest row near the midline.
    """
    seeds = _two_largest(lungs)
    eroded = lungs
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndi.generate_binary_structure(2, 1)
    for _ in range(int(round(max_erode_mm / min(spacing[1], spacing[2])))):
        if seeds is not None or not eroded.any():
            break
        eroded = ndi.binary_erosion(eroded, plane)
        seeds = _two_largest(eroded)
    del eroded
    side = np.zeros(lungs.shape, np.uint8)
    if seeds is None:
        for z in np.flatnonzero(lungs.any(axis=(1, 2))):
            side[z] = split_rows(lungs[z], midline)
        return side, ["right/left split per slice at the thinnest point near the midline (no two separate lungs)"]
    rows = [np.nonzero(s)[1].mean() for s in seeds]
    right, left = (seeds[0], seeds[1]) if rows[0] < rows[1] else (seeds[1], seeds[0])
    seed = np.where(right, RIGHT, np.where(left, LEFT, 0)).astype(np.uint8)
    del seeds, right, left
    sampling = (spacing[1], spacing[2])
    both = (seed == RIGHT).any(axis=(1, 2)) & (seed == LEFT).any(axis=(1, 2))
    for z in np.flatnonzero(both):
        side[z] = nearest_label(lungs[z], seed[z], sampling)
    done = both.copy()
    # Propagate to the remaining slices from the nearest labelled one, upwards then downwards.
    for order in (range(lungs.shape[0]), range(lungs.shape[0] - 1, -1, -1)):
        ref = None
        for z in order:
            if done[z]:
                ref = side[z] if side[z].any() else ref
            elif lungs[z].any() and ref is not None:
                side[z] = nearest_label(lungs[z], ref, sampling)
                done[z] = True
                ref = side[z]
    for z in np.flatnonzero(~done & lungs.any(axis=(1, 2))):
        side[z] = split_rows(lungs[z], midline)
    return side, []


def _drop_trachea(mask: np.ndarray, hu: np.ndarray, midline: float, max_px: float) -> np.ndarray:
    """Remove small, pure-air, central regions (trachea, main bronchi outside the lungs)."""
    lab, n = ndi.label(mask)
    mask = mask.copy()
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        area = comp.sum()
        centre = sl[0].start + np.nonzero(comp)[0].mean()
        if area < max_px and abs(centre - midline) < 0.12 * mask.shape[0] and hu[sl][comp].mean() < -900:
            mask[sl][comp] = False
    return mask


def _drop_airway_tube(lungs: np.ndarray, zs: np.ndarray, midline: float, max_px: float) -> None:
    """From the apex slice ``zs[0]`` downwards, remove the small central region that continues from slice to slice
    (the trachea above the apices; at low resolution partial volume lifts its mean HU above the per-slice test).
    Stops where no such region overlaps the last one (a gap of one slice is bridged)."""
    prev, gap = None, 0
    for z in zs:
        lab, n = ndi.label(lungs[z])
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        rows = [c[0] for c in ndi.center_of_mass(lungs[z], lab, range(1, n + 1))]
        tube = [i for i, r in enumerate(rows, start=1) if sizes[i] < max_px and abs(r - midline) < 0.12 * lab.shape[0]]
        if prev is not None:
            tube = list(np.intersect1d(tube, lab[prev]))
        if tube:
            found = np.isin(lab, tube)
            lungs[z] &= ~found
            prev, gap = ndi.binary_dilation(found, iterations=1), 0
        elif prev is None or gap >= 1:
            return
        else:
            gap += 1


def upsample_labels(labels: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    if f == 1:
        return labels[: shape[0], : shape[1]].astype(np.uint8)
    h, w = labels.shape[0] * f, labels.shape[1] * f
    out = np.zeros((h, w), np.uint8)
    for value in (RIGHT, LEFT):
        m = labels == value
        if m.any():
            up = Image.fromarray((m * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
            out[np.asarray(up) >= 128] = value
    return out[: shape[0], : shape[1]]


def otsu_threshold(hist: np.ndarray) -> int:
    p = hist / max(hist.sum(), 1.0)
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
    return int(np.nanargmax(between))


def lungmask_package_available() -> bool:
    """True when the ``lungmask`` package is importable and its R231 weights are already downloaded."""
    if importlib.util.find_spec("lungmask") is None:
        return False
    try:
        import torch

        checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:  # noqa: BLE001 - any failure means "not usable offline"
        return False
    return any(checkpoints.glob("unet_r231*.pth"))


def lungmask_package_mask(image) -> np.ndarray:
    """Labels (z, y, x; 1 right, 2 left) from the ``lungmask`` package (U-net R231) for a SimpleITK image."""
    if not lungmask_package_available():
        raise InfnetError("--lung-mask lungmask needs the 'lungmask' package and its R231 weights downloaded")
    from lungmask import LMInferer  # type: ignore[import-not-found]

    labels = LMInferer(modelname="R231", force_cpu=True, tqdm_disable=True).apply(image)
    return np.asarray(labels, dtype=np.uint8)
