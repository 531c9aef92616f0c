"""2D slices as users have them: a lung mask for lung-cropped and full-field-of-view 8-bit slices, and the slice's
orientation read from the anatomy.

Lung mask (:func:`lung_mask_2d`), on an 8-bit slice in any lung window:

1. dark = grey below Otsu's threshold (kept within 40..200), opened by a 1-pixel disk;
2. full field of view when dark regions lying mostly outside the convex hull of the bright ones (body, table;
   specks under 2 % of the image left out) cover at least 10 % of the image: air around the body and the black
   circle outside the reconstruction field. They are dropped, and so are pure-air regions far darker than the
   lungs (trachea, gas). Otherwise the slice is lung-cropped (lungs touch the border, as in COVID-SemiSeg);
3. lung-cropped: every region of at least 1 % of the image (lungs split by dense infection); full field: every
   region of at least 0.3 % of the image and 10 % of the largest, except small ones of pure air; then closed
   and hole-filled per lung;
4. right / left as the volume method labels them: rows run from the patient's right to left (training
   orientation), so callers turn the slice into that orientation first.

Orientation (:func:`detect_orientation`): the two lungs lie side by side along the right-left axis; the spine (the
brightest compact structure between them) lies behind them; the right lung is the larger one. Each cue gives a
confidence; the result is used only where the caller asks for it, and always reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from infnet.data.presentation import dihedral, undo_dihedral
from infnet.scan.lungmask import LEFT, RIGHT, close_fill, disk, otsu_threshold, split_rows, upsample_labels
from infnet.scan.preprocess import lung_box

MAX_WORK_PX = 256  # the mask is found at most at this size (bilinear back up): bounded time for any input


def _block_mean(img: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return img.astype(np.float32)
    r, c = img.shape
    pr, pc = (-r) % f, (-c) % f
    arr = np.pad(img.astype(np.float32), ((0, pr), (0, pc)), mode="edge")
    return arr.reshape((r + pr) // f, f, (c + pc) // f, f).mean(axis=(1, 3))


def _air_tissue_threshold(grey: np.ndarray) -> int:
    """Otsu's grey level between air and tissue of an 8-bit image, kept within 40..200."""
    hist = np.bincount(np.clip(grey + 0.5, 0, 255).astype(np.uint8).ravel(), minlength=256).astype(float)
    return min(max(otsu_threshold(hist), 40), 200)


def _work_image(img: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(the slice block-averaged to at most MAX_WORK_PX, the factor, its air/tissue threshold)."""
    f = max(1, -(-max(img.shape) // MAX_WORK_PX))
    small = _block_mean(img, f)
    return small, f, _air_tissue_threshold(small)


def _in_hull(mask: np.ndarray) -> np.ndarray:
    """Pixels inside the convex hull of ``mask``'s pixels (all pixels when the hull is degenerate)."""
    pts = np.argwhere(mask)
    if len(pts) < 3:
        return np.ones(mask.shape, bool)
    try:
        hull = ConvexHull(pts)
    except QhullError:
        return np.ones(mask.shape, bool)
    grid = np.indices(mask.shape).reshape(2, -1).T.astype(np.float32)
    eq = hull.equations.astype(np.float32)
    return ((grid @ eq[:, :2].T + eq[:, 2]) <= 0.5).all(axis=1).reshape(mask.shape)


def lung_mask_2d(img: np.ndarray) -> tuple[np.ndarray, str]:
    """(labels 0/1 right/2 left at the input size, 'full' or 'cropped' field of view) of an 8-bit slice.

    The slice is expected in the training orientation (rows right->left) for the right/left labels; the lung
    region itself does not depend on orientation.
    """
    img = np.asarray(img, dtype=np.uint8)
    if img.ndim != 2 or min(img.shape) < 8 or int(img.max()) == int(img.min()):
        return np.zeros(img.shape, np.uint8), "cropped"
    small, f, t = _work_image(img)
    dark = ndi.binary_opening(small < t, disk(1))
    bright = ndi.binary_opening(~dark, disk(1))
    # The body and the table, without specks: the air around them lies outside their convex hull, the lungs
    # (and the air of a lung-cropped slice, walled by tissue at the corners and the mediastinum) inside it.
    blab, nb = ndi.label(bright)
    if nb:
        bsizes = np.bincount(blab.ravel())[1:]
        bright = np.isin(blab, np.flatnonzero(bsizes >= 0.02 * small.size) + 1)
    hull = _in_hull(bright)
    lab, n = ndi.label(dark)
    if n == 0:
        return np.zeros(img.shape, np.uint8), "cropped"
    sizes = np.bincount(lab.ravel())[1:].astype(float)
    inside = np.bincount(lab[hull], minlength=n + 1)[1:]
    outside = 2 * inside < sizes
    fov = "full" if sizes[outside].sum() >= 0.1 * small.size else "cropped"
    if fov == "full":
        sizes[outside] = 0
    order = [int(i) + 1 for i in np.argsort(sizes)[::-1] if sizes[i] >= 0.003 * small.size]
    if fov == "cropped":  # lungs cut by the crop and split by dense infection: every sizeable dark region
        keep = [i for i in order if sizes[i - 1] >= 0.01 * small.size]
    elif order:
        # Small regions of pure air (trachea, bowel gas) are much darker than the lung (the largest region);
        # large dark ones are lung too (emphysema, a lung split by infection).
        med = ndi.median(small, lab, index=order)
        big = sizes[order[0] - 1]
        gas = [i != order[0] and m < med[0] - 0.25 * (t - med[0]) and sizes[i - 1] < 0.25 * big
               for i, m in zip(order, med, strict=True)]  # fmt: skip
        keep = [i for i, g in zip(order, gas, strict=True) if not g and sizes[i - 1] >= 0.1 * big]
    else:
        keep = []
    mask = np.isin(lab, keep)
    side = split_rows(mask, mask.shape[0] / 2.0)
    radius = max(2, int(round(0.015 * max(small.shape))))
    r_mask, l_mask = close_fill(side == RIGHT, radius), close_fill(side == LEFT, radius)
    labels = np.where(r_mask, RIGHT, np.where(l_mask, LEFT, 0)).astype(np.uint8)
    return upsample_labels(labels, f, img.shape), fov


# The lungs' centres lie along one image axis with this share of their offset: on 840 lung-cropped COVID-SemiSeg
# slice views and 2976 real full-FOV exports (5 scans, 8 orientations, 3 windows), the axis so read was never
# wrong (benchmarks/lungmask_2d.py prints the counts); unsure on 10 % and 25 % (one lung found: apices, bases).
AXIS_CONFIDENT = 0.8

# The stated orientations of a 2D slice, as the dihedral element that turns it into the training orientation.
ORIENTATIONS = {"training": 0, "radiological": 4}


def detect_orientation(img: np.ndarray, lungs: np.ndarray | None = None) -> dict:
    """The dihedral element ``k`` (see :func:`infnet.data.presentation.dihedral`) that turns ``img`` into the
    training orientation (rows right->left, columns anterior->posterior), with per-cue confidence.

    Returns ``{"k": int | None, "layout": name | None, "confident": bool, "axis": "rows" | "columns" | None,
    "cues": {...}}``; ``k`` is None when the two lungs are not found side by side. ``axis`` (set when the lungs'
    centres lie clearly along one axis, :data:`AXIS_CONFIDENT`) is the image axis along which they lie: 'rows'
    in the training orientation, whatever the other cues say.
    """
    img = np.asarray(img, dtype=np.uint8)
    if lungs is None:
        lungs, _ = lung_mask_2d(img)
    region = lungs > 0
    lab, n = ndi.label(region)
    out: dict = {"k": None, "layout": None, "confident": False, "axis": None, "cues": {}}
    if n < 2:
        out["cues"]["lungs"] = "two lungs not found"
        return out
    sizes = np.bincount(lab.ravel())[1:]
    a, b = (int(i) + 1 for i in np.argsort(sizes)[::-1][:2])
    if sizes[b - 1] < 0.25 * sizes[a - 1]:
        out["cues"]["lungs"] = "one lung much smaller than the other"
        return out
    ca, cb = (np.array(ndi.center_of_mass(region, lab, i)) for i in (a, b))
    d = cb - ca
    lr_axis = int(np.argmax(np.abs(d)))  # 0: lungs side by side along rows (training), 1: along columns
    ap_axis = 1 - lr_axis
    axis_conf = float(abs(d[lr_axis]) / (np.abs(d).sum() + 1e-9))
    # Spine: saturated bright pixels between the lungs, in front of or behind their centre.
    lo, hi = sorted((ca[lr_axis], cb[lr_axis]))
    span = hi - lo
    band = (lo + 0.3 * span, hi - 0.3 * span)
    bright = img >= max(200, int(np.percentile(img, 99)))
    coords = np.nonzero(bright)
    in_band = (coords[lr_axis] >= band[0]) & (coords[lr_axis] <= band[1])
    ap_centre = (ca[ap_axis] + cb[ap_axis]) / 2
    ap = coords[ap_axis][in_band] - ap_centre
    behind, front = int((ap > 0).sum()), int((ap < 0).sum())
    posterior_sign = 1 if behind >= front else -1  # +1: posterior towards higher index on the A-P axis
    spine_conf = float(abs(behind - front) / max(behind + front, 1))
    # Right lung larger (the heart sits on the left).
    big, small_ = (ca, cb) if sizes[a - 1] >= sizes[b - 1] else (cb, ca)
    right_sign = 1 if big[lr_axis] < small_[lr_axis] else -1  # +1: right lung at the lower index
    size_conf = float(abs(sizes[a - 1] - sizes[b - 1]) / (sizes[a - 1] + sizes[b - 1]))
    # Build the transform: in training orientation rows run R->L (right at low row), columns A->P.
    k = _dihedral_for(lr_axis, right_sign, posterior_sign)
    out.update(k=k, layout=next((name for name, v in ORIENTATIONS.items() if v == k), f"dihedral {k}"))
    out["cues"] = {"lungs_side_by_side": round(axis_conf, 2), "spine_behind": round(spine_conf, 2),
                   "right_lung_larger": round(size_conf, 2)}  # fmt: skip
    # spine > 0.9: at > 0.5, 64 of 600 confident readings of real exports were wrong (56 of them with the spine
    # cue at <= 0.8); at > 0.9, 0 of 404 (benchmarks/lungmask_2d.py, the 5 shared real scans).
    out["confident"] = axis_conf > AXIS_CONFIDENT and spine_conf > 0.9 and size_conf > 0.08
    if axis_conf > AXIS_CONFIDENT:
        out["axis"] = ("rows", "columns")[lr_axis]
    return out


def _dihedral_for(lr_axis: int, right_sign: int, posterior_sign: int) -> int:
    """The k whose transform puts the patient's right in the top rows and anterior in the left columns."""
    idx = np.indices((2, 2))
    rl = idx[lr_axis] if right_sign > 0 else 1 - idx[lr_axis]  # 0 on the patient's right
    ap = idx[1 - lr_axis] if posterior_sign > 0 else 1 - idx[1 - lr_axis]  # 0 at the front
    for k in range(8):
        t_rl, t_ap = dihedral(rl, k), dihedral(ap, k)
        if t_rl[0, 0] == 0 and t_rl[1, 0] == 1 and t_ap[0, 0] == 0 and t_ap[0, 1] == 1:
            return k
    raise AssertionError("no dihedral element matches")  # unreachable: the 8 elements cover every case


ASSUMED_PIXEL_MM = 0.7  # for the crop margin of a full-FOV slice whose pixel spacing is not given (512 px, 36 cm)
ORIENTATION_CHOICES = ("radiological", "training", "auto")


@dataclass
class PreparedSlice:
    """A 2D slice turned into what the model expects, and how to go back."""

    k: int  # dihedral element applied to the input (training orientation = dihedral(input, k))
    image: np.ndarray  # the slice in the training orientation
    lungs: np.ndarray  # lung labels (1 right, 2 left) in the training orientation
    fov: str  # 'full' or 'cropped'
    box: tuple[slice, slice] | None  # lung box the model sees (full FOV), None for the whole slice
    detected: dict  # detect_orientation() on the slice as stated
    body: tuple[slice, slice] | None = None  # the body's box (full FOV): where a first pass looks for infection
    turned: bool = False  # the lungs lay one above the other as stated: turned a quarter (prepare_slice)

    def restore(self, a: np.ndarray) -> np.ndarray:
        """An array of the training-oriented slice (..., H, W) back to the input's layout."""
        return np.ascontiguousarray(undo_dihedral(a, self.k))


def prepare_slice(
    img: np.ndarray, orientation: str = "radiological", pixel_mm: float | None = None, margin_mm: float = 3.0
) -> PreparedSlice:
    """Orient (as stated, or as detected with ``auto``), find the lungs and, for a full field of view, the lung
    box the model is run on (as the volume path crops), so that the answer does not depend on the field of view.

    A slice whose lungs lie one above the other once turned as stated cannot be in that orientation: it is
    turned a quarter more, by the anatomy's best guess (``turned``), so that the model and the right/left split
    see the lungs side by side, as every training slice shows them."""
    k = 0 if orientation == "training" else ORIENTATIONS["radiological"]
    oriented = np.ascontiguousarray(dihedral(img, k))
    lungs, fov = lung_mask_2d(oriented)
    detected = detect_orientation(oriented, lungs)
    wrong_axis = detected["axis"] == "columns"
    if detected["k"] and (wrong_axis or (orientation == "auto" and detected["confident"])):
        k2 = detected["k"]
        oriented = np.ascontiguousarray(dihedral(oriented, k2))
        lungs, fov = lung_mask_2d(oriented)
        k = _compose(k, k2)
    box = body = None
    if fov == "full":
        px = pixel_mm or ASSUMED_PIXEL_MM
        box = lung_box(lungs > 0, (px, px), margin_mm)
        body = body_box(oriented)
    return PreparedSlice(k, oriented, lungs, fov, box, detected, body, turned=wrong_axis)


SATURATED_SHARE = 0.7  # training-window slices: median 0.06, max 0.66; in -700/1000 HU: median 0.87 (window_check.py)


def saturated_tissue_share(img: np.ndarray) -> float:
    """Share of the non-air pixels of an 8-bit slice at >= 250: near 1 when the window ends below soft tissue
    (e.g. level -700 / width 1000 HU ends at -200 HU), where the COVID-SemiSeg window (ending at 270 HU) does not."""
    img = np.asarray(img, np.uint8)
    tissue = img >= _air_tissue_threshold(img)
    return float((img[tissue] >= 250).mean()) if tissue.any() else 0.0


def body_box(img: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box of the body (the largest non-air region, holes filled) of a full-FOV 8-bit slice."""
    small, f, t = _work_image(img)
    lab, n = ndi.label(ndi.binary_opening(small >= t, disk(1)))
    if n == 0:
        return None
    body = lab == int(np.argmax(np.bincount(lab.ravel())[1:])) + 1
    sl = ndi.find_objects(body.astype(np.uint8))[0]
    return tuple(slice(s.start * f, min(s.stop * f, n_)) for s, n_ in zip(sl, img.shape, strict=True))  # type: ignore[return-value]


def widen_box(p: PreparedSlice, infection: np.ndarray, pixel_mm: float | None, margin_mm: float) -> PreparedSlice:
    """``p`` with its box grown to hold ``infection`` (a first pass over the body): dense infection is bright, so
    the intensity lung mask, and its box, can miss much of a consolidated lung."""
    px = pixel_mm or ASSUMED_PIXEL_MM
    box = lung_box((p.lungs > 0) | infection, (px, px), margin_mm) or p.body
    return replace(p, box=box)


def _compose(k1: int, k2: int) -> int:
    """The k with dihedral(a, k) == dihedral(dihedral(a, k1), k2)."""
    probe = np.arange(6).reshape(2, 3)
    target = dihedral(dihedral(probe, k1), k2)
    return next(k for k in range(8) if np.array_equal(dihedral(probe, k), target))


def orientation_summary(
    stated: str, used: list[int], detected: list[dict], names: list[str], turned: list[bool]
) -> dict:
    """report.json ``settings.orientation`` and notes of 2D slices: what was stated, used (the dihedral ``k`` of
    each :class:`PreparedSlice`) and read from the anatomy, and which slices were turned."""
    names_of = {v: k for k, v in ORIENTATIONS.items()}
    used_names = [names_of.get(k, f"dihedral {k}") for k in used]
    # detect_orientation ran on the slice as stated: k == 0 means the anatomy agrees with the statement. A slice
    # turned a quarter (lungs one above the other) has its own note.
    disagree = [nm for nm, d, t in zip(names, detected, turned, strict=True)
                if d["confident"] and d["k"] not in (None, 0) and not t]  # fmt: skip
    agree = sum(1 for d in detected if d["confident"] and d["k"] == 0)
    settings = {
        "stated": stated,
        "used": sorted(set(used_names)),
        "detected": {"agrees": agree, "disagrees": len(disagree), "unsure": len(detected) - agree - len(disagree),
                     "cues": "lungs side by side, spine behind them, right lung larger"},
        "turned_lungs_one_above_other": sum(turned),
    }  # fmt: skip
    notes = []
    if disagree and stated == "auto":  # auto turned these as their anatomy reads
        notes.append(
            f"{_listed(disagree)} were turned as their anatomy reads (auto): right and left there come from the "
            "lung sizes, which can mislead at the lung bases (the liver raises the right hemidiaphragm); state "
            "--slice-orientation when it is known"
        )
    if any(turned):
        notes.append(
            f"{_listed([nm for nm, t in zip(names, turned, strict=True) if t])} showed their lungs one above the "
            f"other as {stated}: turned a quarter by the anatomy (spine, lung sizes) so that they lie side by side; "
            "right and left there are the anatomy's guess (the lung sizes mislead at the bases), not "
            "--slice-orientation"
        )
    if disagree and stated != "auto":
        notes.append(
            f"the anatomy of {_listed(disagree)} does not look {stated}: right and left may be swapped; check "
            "--slice-orientation (training for the COVID-SemiSeg layout, auto to read it)"
        )
    return {"settings": settings, "notes": notes}


def _listed(names: list[str]) -> str:
    """'3 slice(s) (a, b, c)', at most 5 names shown."""
    return f"{len(names)} slice(s) ({', '.join(names[:5])}{' ...' if len(names) > 5 else ''})"
