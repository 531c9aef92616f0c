"""The authors' published metric files (``*_result.txt`` of their MATLAB evaluation tool)."""

from __future__ import annotations

import re
from pathlib import Path


def parse_result_txt(path: str | Path) -> dict[str, dict[str, float]]:
    """model -> {metric: value} from a ``*_result.txt`` of the authors' MATLAB tool."""
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"\(Dataset:[^;]+; Model:([^)]+)\)\s*(.*)$", line.strip())
        if not m:
            continue
        scores = {}
        for item in m.group(2).rstrip(".").split(";"):
            key, _, value = item.strip().partition(":")
            if key:
                scores[key] = float(value)
        out[m.group(1)] = scores
    return out
