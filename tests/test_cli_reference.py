"""docs/cli.md is generated from the argparse parsers and is up to date (``python scripts/cli_reference.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.render()
    assert "## `infnet segment`" in text and "`--slice-orientation {radiological,training,auto}`" in text
    assert mod.OUT.read_text() == text, "docs/cli.md is out of date: run .venv/bin/python scripts/cli_reference.py"
