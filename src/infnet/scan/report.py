"""report.json, a self-contained report.html (images inlined as base64), overlay PNGs and an area plot (PIL only)."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

from infnet import __version__
from infnet.io.images import atomic_write_bytes, atomic_write_text
from infnet.scan.preprocess import axial_view, to_display, window_to_uint8
from infnet.scan.viewer import viewer_html, viewer_payload
from infnet.scan.zones import slice_positions_mm

if TYPE_CHECKING:
    from infnet.scan.result import SegmentationResult

DISCLAIMER = (
    "Research software, not a medical device: not for clinical diagnosis or treatment decisions. "
    "The bundled weights are trained on COVID-SemiSeg (Inf-Net release), whose licence allows "
    "non-commercial use only."
)
LUNG_RGB = (0, 220, 255)
CLASS_RGB = {"infection": (255, 40, 40), "ggo": (255, 40, 40), "consolidation": (40, 220, 40)}
OTHER_RGB = [(255, 160, 0), (200, 0, 255), (255, 255, 0)]
MONTAGE_SLICES = 6


def class_colour(name: str, index: int) -> tuple[int, int, int]:
    return CLASS_RGB.get(name, OTHER_RGB[index % len(OTHER_RGB)])


def build_report(result: SegmentationResult, outputs: dict[str, str], dicom: dict | None = None) -> dict:
    """The report.json content: input, model, settings, measurements, outputs, notes and the disclaimer."""
    scan = result.scan
    info: dict = {"path": str(result.source), "format": scan.format}
    if result.is_volume:
        info.update(scan.geometry.to_dict())
        info["modality"] = scan.modality
    else:
        info["slices"] = len(scan.images)
        info["pixel_spacing_mm"] = scan.pixel_spacing
    if dicom:
        info["dicom"] = dicom
    return {
        "schema": "infnet.segment/1",
        "infnet_version": __version__,
        "input": info,
        "dimensionality": "3d" if result.is_volume else "2d",
        "model": {
            "name": result.model,
            "classes": list(result.classes),
            "mask_labels": {str(i + 1): c for i, c in enumerate(result.classes)},
        },  # fmt: skip
        "settings": result.settings,
        **result.measurements,
        "outputs": outputs,
        "notes": result.notes,
        "timing_s": {k: round(v, 3) for k, v in result.timings.items()},
        "disclaimer": DISCLAIMER,
    }


def display_slice(result: SegmentationResult, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grey, lungs, mask) of slice ``index`` for display: radiological for volumes, as stored for 2D."""
    if not result.is_volume:
        return result.scan.images[index], result.lungs[index], result.mask[index]
    d = result.scan.geometry.direction3()
    raw = np.asarray(axial_view(result.scan.array, d)[index])
    grey = window_to_uint8(raw) if result.scan.intensity == "hu" else np.clip(raw, 0, 255).astype(np.uint8)
    lung = np.asarray(axial_view(result.lungs, d)[index])
    mask = np.asarray(axial_view(result.mask, d)[index])
    return to_display(grey), to_display(lung), to_display(mask)


def overlay_rgb(grey: np.ndarray, lung: np.ndarray, mask: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Grey slice with infection filled (semi-transparent, one colour per class) and the lung contour drawn."""
    rgb = np.repeat(np.asarray(grey, np.uint8)[..., None], 3, axis=2).astype(np.float32)
    for c, name in enumerate(classes):
        sel = mask == c + 1
        rgb[sel] = 0.55 * rgb[sel] + 0.45 * np.array(class_colour(name, c), np.float32)
    width = max(1, round(max(lung.shape) / 256))  # stays visible when a 512-px slice is shown at 256
    for side in (1, 2):
        m = lung == side
        if m.any():
            rgb[m & ~ndi.binary_erosion(m, iterations=width)] = LUNG_RGB
    return rgb.astype(np.uint8)


def chosen_slices(measurements: dict, k: int = MONTAGE_SLICES) -> list[int]:
    """The ``k`` most-infected slices in slice order; without infection, ``k`` slices spread over the lungs."""
    rows = measurements["per_slice"]
    inf_key = next(key for key in rows[0] if key.startswith("infected_area")) if rows else None
    infected = [r for r in rows if inf_key and r[inf_key]]
    if infected:
        best = sorted(infected, key=lambda r: r[inf_key], reverse=True)[:k]
        return sorted(r["index"] for r in best)
    lung_key = next((key for key in rows[0] if key.startswith("lung_area")), None) if rows else None
    with_lung = [r["index"] for r in rows if lung_key and r[lung_key]] or [r["index"] for r in rows]
    if len(with_lung) <= k:
        return with_lung
    return [with_lung[int(i)] for i in np.linspace(0, len(with_lung) - 1, k + 2)[1:-1].round()]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def montage(tiles: list[tuple[str, np.ndarray]], tile: int = 256, ncols: int = 3) -> np.ndarray:
    """Tiles (caption, RGB) scaled into ``tile``-pixel squares on a black grid."""
    ncols = max(1, min(ncols, len(tiles)))
    nrows = max(1, -(-len(tiles) // ncols))
    canvas = Image.new("RGB", (ncols * tile, nrows * tile))
    draw = ImageDraw.Draw(canvas)
    for i, (caption, rgb) in enumerate(tiles):
        im = Image.fromarray(rgb)
        scale = min(tile / im.width, tile / im.height)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
        x, y = (i % ncols) * tile, (i // ncols) * tile
        canvas.paste(im, (x + (tile - im.width) // 2, y + (tile - im.height) // 2))
        draw.text((x + 4, y + 2), caption, fill=(255, 255, 0), font=_font(13))
    return np.asarray(canvas)


def area_plot(rows: list[dict], classes: tuple[str, ...], unit: str, width: int = 720, height: int = 260) -> np.ndarray:
    """Infected area per slice (one line per class for multi-class models), lung area as a grey band."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = _font(12)
    left, right, top, bottom = 64, 12, 22, 36
    pw, ph = width - left - right, height - top - bottom
    n = len(rows)
    series = [("infected", f"infected_area_{unit}", (200, 0, 0))]
    if len(classes) > 1:
        series = [(c, f"{c}_area_{unit}", class_colour(c, i)) for i, c in enumerate(classes)]
    lung = np.array([r.get(f"lung_area_{unit}") or 0.0 for r in rows], float)
    values = {name: np.array([r.get(key) or 0.0 for r in rows], float) for name, key, _ in series}
    ymax = max([v.max() for v in values.values()] + [1e-9])
    ymax = float(np.ceil(ymax * 1.1 / 10 ** np.floor(np.log10(ymax * 1.1))) * 10 ** np.floor(np.log10(ymax * 1.1)))

    def xy(i: float, v: float) -> tuple[float, float]:
        return left + (i + 0.5) * pw / max(n, 1), top + ph - min(v, ymax) / ymax * ph

    if lung.max() > 0:  # lung extent, as context
        for i in np.flatnonzero(lung > 0):
            x0, _ = xy(i - 0.5, 0)
            x1, _ = xy(i + 0.5, 0)
            draw.rectangle([x0, top, x1, top + ph], fill=(235, 240, 245))
    draw.rectangle([left, top, left + pw, top + ph], outline="black")
    for t in np.linspace(0, ymax, 5):
        _, y = xy(0, t)
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((4, y - 7), f"{t:,.0f}" if ymax >= 100 else f"{t:.3g}", fill="black", font=font)
    for t in np.unique(np.linspace(0, max(n - 1, 0), min(n, 8)).round().astype(int)):
        x, _ = xy(t, 0)
        draw.line([x, top + ph, x, top + ph + 4], fill="black")
        draw.text((x - 8, top + ph + 6), str(t), fill="black", font=font)
    for name, _, colour in series:
        pts = [xy(i, v) for i, v in enumerate(values[name])]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        if len(pts) <= 30:  # few slices (2D inputs): mark each value
            for px, py in pts:
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    label = "mm^2" if unit == "mm2" else "pixels"  # the default bitmap font has no superscript 2
    draw.text((left, 4), f"infected area per slice ({label}); shaded: slices with lung", fill="black", font=font)
    draw.text((left + pw // 2 - 20, height - 16), "slice", fill="black", font=font)
    for j, (name, _, colour) in enumerate(series if len(series) > 1 else []):
        draw.text((left + pw - 110, top + 4 + 14 * j), name, fill=colour, font=font)
    return np.asarray(img)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def region_tables(report: dict) -> str:
    """HTML tables of the zones (volumes) and, when present, the lobes with their severity scores."""
    parts = []
    zones = report.get("zones")
    classes = [c for c in report["model"]["classes"] if len(report["model"]["classes"]) > 1]
    if zones:
        head = "".join(f"<th>{html.escape(s)} lung (mL)</th><th>infected (mL)</th><th>%</th>"
                       for s in ("Right", "Left", "Both"))  # fmt: skip
        rows = []
        for zone in ("upper", "middle", "lower", "ventral", "dorsal"):
            cells = [f"<td>{zone.capitalize()}</td>"]
            for side in ("right", "left", "both"):
                e = zones[zone][side]
                extra = "".join(f"<br><small>{html.escape(c)} {_fmt(e.get(f'{c}_volume_ml'))}</small>" for c in classes)
                cells.append(f"<td>{_fmt(e['lung_volume_ml'])}</td><td>{_fmt(e['infected_volume_ml'])}{extra}</td>"
                             f"<td>{_fmt(e['percent_involved'], 2)}</td>")  # fmt: skip
            rows.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(f'<h2>Zones</h2><table class="zones"><tr><th>Zone</th>{head}</tr>{"".join(rows)}</table>'
                     f"<p><small>{html.escape(zones['definition'])}.</small></p>")  # fmt: skip
    lobes = report.get("lobes")
    if lobes:
        rows = []
        for name, e in lobes["lobes"].items():
            extra = "".join(f"<br><small>{html.escape(c)} {_fmt(e.get(f'{c}_volume_ml'))}</small>" for c in classes)
            rows.append(f"<tr><td>{html.escape(name)} ({html.escape(e['name'])})</td><td>{_fmt(e['lobe_volume_ml'])}"
                        f"</td><td>{_fmt(e['infected_volume_ml'])}{extra}</td><td>{_fmt(e['percent_involved'], 2)}"
                        f"</td><td>{e['score']}</td></tr>")  # fmt: skip
        parts.append(
            f'<h2>Lobes and CT severity score</h2><table class="lobes"><tr><th>Lobe</th><th>volume (mL)</th>'
            f'<th>infected (mL)</th><th>%</th><th>score 0-5</th></tr>{"".join(rows)}<tr><td>Total</td><td></td>'
            f'<td></td><td></td><td><b>{lobes["severity_score"]} / 25</b></td></tr></table>'
            f"<p><small>Lobes from {html.escape(str(lobes['source']))} ({html.escape(lobes['scheme'])}). "
            f"{html.escape(lobes['score_definition'])}.</small></p>"
        )
    return "".join(parts)


def render_html(report: dict, viewer: str) -> str:
    """A single HTML file: the numbers, the zone/lobe tables and the slice viewer (everything inlined)."""
    units = report["units"]
    qty = "volume_ml" if "volume" in units else f"area_{units['area']}"
    unit = "mL" if qty == "volume_ml" else ("mm²" if units["area"] == "mm2" else "px")
    rows = []
    lung = (report.get("lung") or {}).get(qty) if report.get("lung") else None
    inf = report["infection"]
    groups = [("Infection", inf)] + [(name.upper() if name == "ggo" else name.capitalize(), v)
                                     for name, v in (report.get("classes") or {}).items()]  # fmt: skip
    for side in ("right", "left", "total"):
        cells = [f"<td>{side.capitalize() if side != 'total' else 'Both lungs'}</td>",
                 f"<td>{_fmt(lung.get(side) if lung else None)}</td>"]  # fmt: skip
        for _, g in groups:
            pct = (g.get("percent_of_lung") or {}).get(side)
            cells.append(f"<td>{_fmt(g[qty].get(side))}</td><td>{_fmt(pct, 2)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{html.escape(n)} ({unit})</th><th>% of lung</th>" for n, _ in groups)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report["notes"])
    inp = report["input"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>infnet report: {html.escape(Path(inp["path"]).name)}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:1em auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}th{{background:#eee}}td:first-child{{text-align:left}}
.warn{{background:#fff3cd;border:1px solid #e0c060;padding:8px}}img{{max-width:100%}}</style></head><body>
<h1>Lung infection segmentation</h1>
<p class="warn">{html.escape(report["disclaimer"])}</p>
<p>Input: <code>{html.escape(inp["path"])}</code> ({html.escape(inp["format"])}) &middot; model
<code>{html.escape(report["model"]["name"])}</code> ({", ".join(map(html.escape, report["model"]["classes"]))})
&middot; lung mask: {html.escape(str(report["settings"]["lung_mask"]))}</p>
<table><tr><th></th><th>Lung ({unit})</th>{head}</tr>{"".join(rows)}</table>
<p>Slices with infection: {inf["slices_with_infection"]} of {inf["slices"]}.</p>
{region_tables(report)}
<h2>Slices</h2>
{viewer}
<h2>Notes</h2><ul>{notes or "<li>none</li>"}</ul>
<p>infnet {html.escape(report["infnet_version"])}; numbers in <code>report.json</code>.</p>
</body></html>
"""


def write_report(result: SegmentationResult, outdir: Path, outputs: dict[str, str], overlays: bool = True,
                 dicom: dict | None = None) -> dict:  # fmt: skip
    """Write overlays/, montage.png, area_plot.png, report.html and (last) report.json into ``outdir``."""
    outdir = Path(outdir)
    chosen = chosen_slices(result.measurements)
    tiles = []
    indices = chosen if result.is_volume else range(len(result.scan.images))
    for i in indices:
        grey, lung, mask = display_slice(result, i)
        rgb = overlay_rgb(grey, lung, mask, result.classes)
        name = f"slice_{i:04d}" if result.is_volume else result.scan.names[i]
        if overlays:
            atomic_write_bytes(outdir / "overlays" / f"{name}.png", png_bytes(rgb))
        if i in chosen:
            tiles.append((name if not result.is_volume else f"slice {i}", rgb))
    if overlays:
        outputs["overlays"] = "overlays/"
    unit = result.measurements["units"]["area"]
    mont = png_bytes(montage(tiles)) if tiles else png_bytes(np.zeros((64, 64, 3), np.uint8))
    plot = png_bytes(area_plot(result.measurements["per_slice"], result.classes, unit))
    atomic_write_bytes(outdir / "montage.png", mont)
    atomic_write_bytes(outdir / "area_plot.png", plot)
    outputs.update({"montage": "montage.png", "area_plot": "area_plot.png", "report_html": "report.html",
                    "report_json": "report.json"})  # fmt: skip
    report = build_report(result, outputs, dicom)
    positions = slice_positions_mm(result.scan.array.shape, result.scan.geometry) if result.is_volume else None
    colours = [class_colour(c, i) for i, c in enumerate(result.classes)]
    payload = viewer_payload(result, colours, positions)
    start = chosen[len(chosen) // 2] if chosen else 0  # open on an affected slice
    atomic_write_text(outdir / "report.html", render_html(report, viewer_html(payload, plot, start)))
    # report.json last: its presence marks the scan as done (the cohort manifest relies on it).
    atomic_write_text(outdir / "report.json", json.dumps(report, indent=1) + "\n")
    return report
