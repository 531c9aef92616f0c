"""Follow-up comparison: two scans (or two ``infnet segment`` output folders) of one patient.

Changes in lung and infected volume and % involved per lung, zone and lobe (when both sides have lobes), and in
the CT severity score, go to ``compare.json`` (every difference under a key containing ``change``); a page
``compare.html`` shows matched slices side by side, matched by relative craniocaudal position within the lungs
(0 = superior edge of the lungs, 1 = inferior edge), so scans with different slice counts line up without
registration.
"""

from __future__ import annotations

import html
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infnet import __version__
from infnet.errors import InfnetError
from infnet.io.images import atomic_write_bytes, atomic_write_text
from infnet.scan.outputs import check_output_dir
from infnet.scan.preprocess import axial_view, to_display, window_to_uint8
from infnet.scan.report import DISCLAIMER, chosen_slices, montage, overlay_rgb, png_bytes
from infnet.scan.volume_io import Geometry, Volume, read_scan
from infnet.scan.zones import SIDES, ZONES, slice_positions_mm

PAIRS = 6
SIDES_TOTAL = (*SIDES, "total")


@dataclass
class Side:
    """One side of a comparison: its measurements and what is needed to draw its slices."""

    path: Path
    measurements: dict
    classes: tuple[str, ...]
    geometry: Geometry
    mask: np.ndarray  # (z, y, x) as stored
    lungs: np.ndarray
    ct: Volume | None  # None when a segment folder's source scan is no longer there
    patient_id: str | None


def _read_mask(path: Path) -> tuple[np.ndarray, Geometry]:
    vol = read_scan(path)
    return np.array(vol.array), vol.geometry  # a copy: the array is a view on vol's SimpleITK image


def _identity(volume: Volume) -> str | None:
    if volume.format not in ("dicom-series", "dicom-file"):
        return None
    from infnet.scan.dicom_seg import dicom_identity, source_instances

    try:
        return dicom_identity(source_instances(volume))["patient_id"] or None
    except InfnetError:
        return None


def _open(path: Path):
    """A segment output folder (its report.json) or a scan (read, not yet segmented)."""
    if not path.exists():
        raise InfnetError(f"{path}: no such file or folder")
    if path.is_dir() and (path / "report.json").is_file():
        try:
            report = json.loads((path / "report.json").read_text())
        except (OSError, ValueError):
            raise InfnetError(f"{path / 'report.json'}: unreadable report") from None
        if report.get("dimensionality") != "3d":
            raise InfnetError(f"{path}: compare needs volume results; this folder holds 2D slice results")
        for name in ("mask.nii.gz", "lungs.nii.gz"):
            if not (path / name).is_file():
                raise InfnetError(f"{path}: {name} missing from the segment output folder")
        return "folder", report, (report["input"].get("dicom") or {}).get("patient_id") or None
    scan = read_scan(path)
    if not isinstance(scan, Volume):
        raise InfnetError(f"{path}: compare needs CT volumes; this input is 2D slices")
    return "scan", scan, _identity(scan)


def _side(path: Path, kind: str, obj, patient: str | None, get_predictor: Callable | None, options: dict) -> Side:
    if kind == "folder":
        mask, geom = _read_mask(path / "mask.nii.gz")
        lungs, _ = _read_mask(path / "lungs.nii.gz")
        src = Path(obj["input"]["path"])
        ct = None
        if src.exists():
            try:
                vol = read_scan(src)
                ct = vol if isinstance(vol, Volume) and vol.array.shape == mask.shape else None
                if ct is not None:
                    ct.intensity = obj["settings"].get("intensity", "hu")
            except InfnetError:
                ct = None
        meas = {k: obj[k] for k in ("units", "lung", "infection", "classes", "zones", "lobes", "per_slice") if k in obj}
        return Side(path, meas, tuple(obj["model"]["classes"]), geom, mask, lungs, ct, patient)
    from infnet.scan.pipeline import segment_volume

    if get_predictor is None:
        raise InfnetError(f"{path}: is a scan; comparing scans needs a model (or give an infnet segment folder)")
    result = segment_volume(get_predictor(), obj, **options)
    return Side(path, result.measurements, result.classes, obj.geometry, result.mask, result.lungs, obj, patient)


def _delta(a: float | None, b: float | None, relative: bool = False) -> dict:
    out = {"baseline": a, "followup": b, "change": None if a is None or b is None else round(b - a, 3)}
    if relative:
        out["change_percent"] = round(100.0 * (b - a) / a, 2) if a and b is not None else None
    return out


def _lung_changes(a: dict, b: dict) -> dict:
    out = {}
    for side in SIDES_TOTAL:
        out[side] = {
            "lung_volume_ml": _delta(a["lung"]["volume_ml"][side], b["lung"]["volume_ml"][side], True),
            "infected_volume_ml": _delta(a["infection"]["volume_ml"][side], b["infection"]["volume_ml"][side], True),
            "percent_involved": _delta(a["infection"]["percent_of_lung"][side],
                                       b["infection"]["percent_of_lung"][side]),  # fmt: skip
        }
    return out


def _entry_changes(ea: dict, eb: dict, keys: tuple[str, ...]) -> dict:
    return {k: _delta(ea.get(k), eb.get(k), k.endswith("_ml")) for k in keys if k in ea or k in eb}


def compare_measurements(a: dict, b: dict, classes_a: tuple[str, ...], classes_b: tuple[str, ...]) -> dict:
    """All changes from two measurement dicts (``SegmentationResult.measurements`` or a report.json)."""
    out: dict = {"lungs": _lung_changes(a, b)}
    if len(classes_a) > 1 and classes_a == classes_b:
        out["classes"] = {c: {s: _delta(a["classes"][c]["volume_ml"][s], b["classes"][c]["volume_ml"][s], True)
                              for s in SIDES_TOTAL} for c in classes_a}  # fmt: skip
    if a.get("zones") and b.get("zones"):
        keys = ("lung_volume_ml", "infected_volume_ml", "percent_involved",
                *(f"{c}_volume_ml" for c in classes_a if len(classes_a) > 1 and classes_a == classes_b))  # fmt: skip
        out["zones"] = {z: {s: _entry_changes(a["zones"][z][s], b["zones"][z][s], keys) for s in (*SIDES, "both")}
                        for z in ZONES}  # fmt: skip
    if a.get("lobes") and b.get("lobes"):
        keys = ("lobe_volume_ml", "infected_volume_ml", "percent_involved", "score")
        out["lobes"] = {k: _entry_changes(a["lobes"]["lobes"][k], b["lobes"]["lobes"][k], keys)
                        for k in a["lobes"]["lobes"]}  # fmt: skip
        out["severity_score"] = _delta(a["lobes"]["severity_score"], b["lobes"]["severity_score"])
        out["severity_score_change"] = out["severity_score"]["change"]
    return out


def _relative_positions(side: Side) -> np.ndarray:
    """Per view slice: 0 at the superior edge of the lungs, 1 at the inferior edge (outside: <0 or >1)."""
    z = slice_positions_mm(side.mask.shape, side.geometry)
    extents = side.measurements.get("zones", {}).get("extent_mm", {}).values()
    cc = [e["craniocaudal"] for e in extents if e["craniocaudal"]]
    if not cc:
        return (z.max() - z) / max(z.max() - z.min(), 1e-6)
    top, bottom = max(c[1] for c in cc), min(c[0] for c in cc)
    return (top - z) / max(top - bottom, 1e-6)


def _tile(side: Side, s: int) -> np.ndarray:
    d = side.geometry.direction3()
    lung = to_display(np.asarray(axial_view(side.lungs, d)[s]))
    mask = to_display(np.asarray(axial_view(side.mask, d)[s]))
    if side.ct is not None:
        raw = np.asarray(axial_view(side.ct.array, d)[s])
        grey = window_to_uint8(raw) if side.ct.intensity == "hu" else np.clip(raw, 0, 255).astype(np.uint8)
        grey = to_display(grey)
    else:  # the source scan is gone: masks on black
        grey = np.zeros_like(lung, np.uint8)
    return overlay_rgb(grey, lung, mask, side.classes)


def matched_slices(a: Side, b: Side, k: int = PAIRS) -> list[tuple[int, int, float]]:
    """(baseline slice, follow-up slice, relative position) for the baseline's most affected slices."""
    ra, rb = _relative_positions(a), _relative_positions(b)
    picks = chosen_slices(a.measurements, k) if a.measurements.get("per_slice") else []
    return [(i, int(np.argmin(np.abs(rb - ra[i]))), round(float(ra[i]), 3)) for i in picks]


def _html(data: dict, slices_png: bytes) -> str:
    import base64

    rows = []
    for side, e in data["changes"]["lungs"].items():
        cells = "".join(f"<td>{_f(e[k]['baseline'])}</td><td>{_f(e[k]['followup'])}</td><td>{_f(e[k]['change'])}</td>"
                        for k in ("lung_volume_ml", "infected_volume_ml", "percent_involved"))  # fmt: skip
        rows.append(f"<tr><td>{side}</td>{cells}</tr>")
    head = "".join(f"<th colspan=3>{h}</th>" for h in ("Lung (mL)", "Infected (mL)", "% involved"))
    zrows = []
    for zone, sides in (data["changes"].get("zones") or {}).items():
        pcts = [sides[s]["percent_involved"] for s in (*SIDES, "both")]
        zrows.append(f"<tr><td>{zone}</td>" + "".join(
            f"<td>{_f(e['baseline'])} &rarr; {_f(e['followup'])} ({_f(e['change'], True)})</td>" for e in pcts)
            + "</tr>")  # fmt: skip
    ztable = (f"<h2>Zones: % involved</h2><table><tr><th>zone</th><th>right</th><th>left</th><th>both</th></tr>"
              f"{''.join(zrows)}</table>") if zrows else ""  # fmt: skip
    lobes = data["changes"].get("lobes")
    ltable = ""
    if lobes:
        lrows = "".join(f"<tr><td>{k}</td><td>{_f(e['percent_involved']['baseline'])} &rarr; "
                        f"{_f(e['percent_involved']['followup'])}</td><td>{e['score']['baseline']} &rarr; "
                        f"{e['score']['followup']}</td></tr>" for k, e in lobes.items())  # fmt: skip
        sev = data["changes"]["severity_score"]
        ltable = (f"<h2>Lobes</h2><table><tr><th>lobe</th><th>% involved</th><th>score</th></tr>{lrows}</table>"
                  f"<p>CT severity score {sev['baseline']} &rarr; {sev['followup']} (change {sev['change']:+d}).</p>")
    warn = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in data["warnings"])
    b64 = base64.b64encode(slices_png).decode("ascii")
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>infnet compare</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}th{{background:#eee}}td:first-child{{text-align:left}}
.warn{{background:#fff3cd;border:1px solid #e0c060;padding:8px}}img{{max-width:100%}}</style></head><body>
<h1>Follow-up comparison</h1><p class="warn">{html.escape(DISCLAIMER)}</p>{warn}
<p>Baseline <code>{html.escape(data["baseline"]["path"])}</code> &middot; follow-up
<code>{html.escape(data["followup"]["path"])}</code></p>
<table><tr><th></th>{head}</tr><tr><th></th>{"<th>baseline</th><th>follow-up</th><th>change</th>" * 3}</tr>
{"".join(rows)}</table>{ztable}{ltable}
<h2>Matched slices</h2><p>Left: baseline, right: follow-up, matched by relative craniocaudal position in the lungs
(0 superior edge, 1 inferior edge); infection filled, lung contour in cyan, radiological view.</p>
<img alt="matched slices" src="data:image/png;base64,{b64}">
<p>infnet {html.escape(__version__)}; numbers in <code>compare.json</code>.</p></body></html>
"""


def _f(v, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+,.1f}" if signed else f"{v:,.1f}"


def compare_scans(baseline: str | os.PathLike, followup: str | os.PathLike, outdir: str | os.PathLike, *,
                  predictor=None, allow_different_patients: bool = False, warn: Callable[[str], None] | None = None,
                  **options) -> dict:  # fmt: skip
    """Compare a follow-up with its baseline (scans or segment output folders); writes compare.json/html.

    ``predictor``: a slice predictor, or a callable returning one (called only when a side is a scan);
    ``options`` go to :func:`~infnet.scan.pipeline.segment_volume`. Two DICOM scans with different PatientIDs
    are refused unless ``allow_different_patients`` (then a warning). Returns the compare.json content.
    """
    paths = [Path(baseline), Path(followup)]
    out = [check_output_dir(p, outdir) for p in paths][0]  # neither input, nor inside an input folder
    opened = [_open(p) for p in paths]
    warnings = []
    ids = [o[2] for o in opened]
    if all(ids) and ids[0] != ids[1]:
        msg = f"different patients: PatientID {ids[0]!r} ({paths[0]}) vs {ids[1]!r} ({paths[1]})"
        if not allow_different_patients:
            raise InfnetError(f"{msg}; pass --allow-different-patients to compare anyway")
        warnings.append(msg)
        (warn or (lambda m: print(f"warning: {m}", file=sys.stderr)))(msg)
    cached = {}

    def get_predictor():
        if "p" not in cached:
            cached["p"] = predictor() if callable(predictor) and not hasattr(predictor, "predict_proba") else predictor
        return cached["p"]

    sides = [_side(p, kind, obj, pid, get_predictor if predictor is not None else None, options)
             for p, (kind, obj, pid) in zip(paths, opened, strict=True)]  # fmt: skip
    a, b = sides
    changes = compare_measurements(a.measurements, b.measurements, a.classes, b.classes)
    pairs = matched_slices(a, b)
    tiles = []
    for i, j, r in pairs:
        tiles += [(f"baseline slice {i} (r {r:.2f})", _tile(a, i)), (f"follow-up slice {j}", _tile(b, j))]
    slices_png = png_bytes(montage(tiles, tile=320, ncols=2)) if tiles else png_bytes(np.zeros((8, 8, 3), np.uint8))
    data = {
        "schema": "infnet.compare/1",
        "infnet_version": __version__,
        "baseline": {"path": str(a.path), "patient_id": a.patient_id, "classes": list(a.classes)},
        "followup": {"path": str(b.path), "patient_id": b.patient_id, "classes": list(b.classes)},
        "changes": changes,
        "matched_slices": [{"baseline": i, "followup": j, "relative_position": r} for i, j, r in pairs],
        "warnings": warnings,
        "definition": "change = follow-up - baseline (mL, or percentage points for percent_involved); "
                      "change_percent = change / baseline x 100",
        "disclaimer": DISCLAIMER,
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "compare_slices.png", slices_png)
    atomic_write_text(out / "compare.html", _html(data, slices_png))
    atomic_write_text(out / "compare.json", json.dumps(data, indent=1) + "\n")
    return data
