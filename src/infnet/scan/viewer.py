"""The slice viewer inside report.html: every slice (downsampled to at most 256 px), overlay, windows; no network.

Each slice is embedded twice as a small image: the CT as 8-bit grey (JPEG, quality 90) in a wide storage
window, and a label PNG (infection class in the low bits, 128 = lung contour). The page decodes them with a
canvas and applies the chosen window with a lookup table, so window presets work without the HU volume.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from infnet.scan.preprocess import WINDOW_LEVEL, WINDOW_WIDTH, axial_view, to_display, view_spacing

if TYPE_CHECKING:
    from infnet.scan.result import SegmentationResult

MAX_PX = 256
JPEG_QUALITY = 90
STORE_LEVEL, STORE_WIDTH = -150.0, 2000.0  # HU volumes are stored as grey in -1150..+850 HU (7.8 HU per level)
PRESETS = (("Model window (L -430 W 1400)", WINDOW_LEVEL, WINDOW_WIDTH), ("Lung (L -600 W 1500)", -600.0, 1500.0),
           ("Mediastinum (L 40 W 400)", 40.0, 400.0))  # fmt: skip
CONTOUR = 128


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encode(img: np.ndarray, fmt: str) -> str:
    buf = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return f"data:image/{fmt.lower()};base64,{_b64(buf.getvalue())}"


def _label_image(lung: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8: infection class (1..) with bit 7 set on the lung contour (drawn one pixel wide at display size)."""
    out = np.asarray(mask, np.uint8).copy()
    for side in (1, 2):
        m = lung == side
        if m.any():
            out[m & ~ndi.binary_erosion(m)] |= CONTOUR
    return out


def _slices(result: SegmentationResult):
    """(grey uint8 in the storage window, lung, mask, (row mm, col mm)) per displayed slice, radiological."""
    if not result.is_volume:
        for img, lung, mask in zip(result.scan.images, result.lungs, result.mask, strict=True):
            sp = float(result.scan.pixel_spacing or 1.0)
            yield img, lung, mask, (sp, sp)
        return
    d = result.scan.geometry.direction3()
    sp = view_spacing(result.scan.geometry.spacing3(), d)
    views = [axial_view(a, d) for a in (result.scan.array, result.lungs, result.mask)]
    lo = STORE_LEVEL - STORE_WIDTH / 2
    for s in range(views[0].shape[0]):
        raw = np.asarray(views[0][s], np.float32)
        if result.scan.intensity == "hu":
            grey = np.clip((raw - lo) * (255.0 / STORE_WIDTH) + 0.5, 0, 255).astype(np.uint8)
        else:
            grey = np.clip(raw, 0, 255).astype(np.uint8)
        yield to_display(grey), to_display(np.asarray(views[1][s])), to_display(np.asarray(views[2][s])), (sp[2], sp[1])


def viewer_payload(result: SegmentationResult, colours: list[tuple[int, int, int]],
                   positions_mm: np.ndarray | None = None, max_px: int = MAX_PX) -> dict:  # fmt: skip
    """The viewer's data: per slice a grey JPEG and a label PNG (data URLs), sizes in pixels and mm.

    ``colours``: RGB per infection class; ``positions_mm``: superior coordinate per slice (volumes).
    """
    slices = []
    for grey, lung, mask, (row_mm, col_mm) in _slices(result):
        h, w = grey.shape
        f = max(1.0, max(h, w) / max_px)
        size = (max(1, round(w / f)), max(1, round(h / f)))
        g = np.asarray(Image.fromarray(np.ascontiguousarray(grey)).resize(size, Image.BILINEAR)) if f > 1 else grey
        lab = _label_image(*(np.asarray(Image.fromarray(np.ascontiguousarray(a, np.uint8)).resize(size, Image.NEAREST))
                             if f > 1 else a for a in (lung, mask)))  # fmt: skip
        slices.append({"g": _encode(np.ascontiguousarray(g), "JPEG"), "m": _encode(lab, "PNG"),
                       "w": size[0], "h": size[1], "mm": [round(w * col_mm, 2), round(h * row_mm, 2)]})  # fmt: skip
    hu = result.is_volume and result.scan.intensity == "hu"
    store = (STORE_LEVEL, STORE_WIDTH) if hu else (WINDOW_LEVEL, WINDOW_WIDTH)  # 8-bit inputs: the model window
    return {
        "slices": slices,
        "store": {"level": store[0], "width": store[1]},
        "presets": [{"name": n, "level": lv, "width": wd} for n, lv, wd in PRESETS],
        "classes": [{"name": c, "rgb": list(colours[i])} for i, c in enumerate(result.classes)],
        "z_mm": [round(float(z), 2) for z in positions_mm] if positions_mm is not None else None,
        "names": None if result.is_volume else list(result.scan.names),
    }


_CSS = """.viewer{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.viewer canvas{background:#000;image-rendering:auto;display:block}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:6px 0}
.plotwrap{position:relative;display:inline-block}#plotmark{position:absolute;top:8.5%;bottom:13.8%;width:2px;
background:#0a0;pointer-events:none}#sliceinfo{font-family:monospace}"""

_JS = Path(__file__).with_name("viewer.js")  # shipped as package data



def viewer_html(payload: dict, plot_png: bytes, start: int = 0) -> str:
    """The viewer section (canvas, controls, the area plot with a slice marker) with its data and script."""
    payload = {**payload, "start": int(start)}
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")  # JSON inside <script>
    n = len(payload["slices"])
    return f"""<style>{_CSS}</style>
<div class="controls"><label>Slice <input type="range" id="slice" min="0" max="{n - 1}" value="{start}"
style="width:320px"></label><span id="sliceinfo"></span><label><input type="checkbox" id="overlay" checked>
overlay (o)</label><label>opacity <input type="range" id="opacity" min="0" max="100" value="45"></label>
<label>window (1-{len(PRESETS)}) <select id="window"></select></label></div>
<p><small>Keys: arrows or mouse wheel scroll, PageUp/PageDown 10 slices, Home/End; click the plot to jump.
Radiological view (patient's right on the image left). Infection filled, lung contour in cyan.</small></p>
<div class="viewer"><canvas id="view" width="1" height="1"></canvas>
<div class="plotwrap"><img id="plot" alt="infected area per slice" src="data:image/png;base64,{_b64(plot_png)}"
style="width:560px"><div id="plotmark"></div></div></div>
<script type="application/json" id="viewer-data">{data}</script>
<script>{_JS.read_text(encoding='utf-8')}</script>
"""
