"""report.html's slice viewer in headless Chromium: no console errors, no network, slider/keys change the slice."""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from _cdp import Browser, find_chromium
from infnet.scan.outputs import write_outputs
from infnet.scan.pipeline import segment_array
from infnet.scan.samples import synthetic_chest_ct
from test_segment import FakePredictor


@pytest.fixture(scope="module")
def chromium():
    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium missing in CI (.ci/run installs it)")
        pytest.skip("chromium not installed")
    browser = Browser(exe)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    hu, spacing = synthetic_chest_ct((24, 128, 128))
    result = segment_array(FakePredictor(("ggo", "consolidation")), hu, spacing=spacing)
    out = tmp_path_factory.mktemp("viewer") / "out"
    write_outputs(result, out, overlays=False)
    return out


def test_report_is_one_offline_file(report_dir):
    text = (report_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text) and "fetch(" not in text
    assert text.count('"g":"data:image/jpeg;base64,') == 24 and text.count('"m":"data:image/png;base64,') == 24
    assert "Zones" in text and "Ventral" in text


def test_viewer_in_chromium(chromium, report_dir):
    chromium.open((report_dir / "report.html").as_uri())
    state = chromium.js("infnetViewer.show(infnetViewer.state().slice).then(() => infnetViewer.state())")
    assert state["slices"] == 24 and state["slice"] >= 0 and state["checksum"] > 0
    # the slider: set it and fire its input event, as a user dragging it would
    a = chromium.js("(() => {const s = document.getElementById('slice'); s.value = 3;"
                    " s.dispatchEvent(new Event('input')); return new Promise(r => setTimeout(r, 200))})()"
                    ".then(() => infnetViewer.state())")  # fmt: skip
    b = chromium.js("(() => {const s = document.getElementById('slice'); s.value = 12;"
                    " s.dispatchEvent(new Event('input')); return new Promise(r => setTimeout(r, 200))})()"
                    ".then(() => infnetViewer.state())")  # fmt: skip
    assert (a["slice"], b["slice"]) == (3, 12) and a["checksum"] != b["checksum"]
    assert "slice 12 / 23" in chromium.js("document.getElementById('sliceinfo').textContent")
    chromium.key("ArrowUp", 38)
    assert chromium.js("new Promise(r => setTimeout(r, 200)).then(() => infnetViewer.state().slice)") == 13
    # overlay off and another window preset change the picture
    on = b["checksum"]
    off = chromium.js("(() => {const o = document.getElementById('overlay'); o.checked = false;"
                      " o.dispatchEvent(new Event('change')); return new Promise(r => setTimeout(r, 200))})()"
                      ".then(() => infnetViewer.state().checksum)")  # fmt: skip
    assert off != on
    png = chromium.screenshot()
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert img.shape[0] > 500 and img.std() > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 200
    assert chromium.errors == []
    assert all(u.startswith(("file:", "data:", "about:")) for u in chromium.urls), chromium.urls
