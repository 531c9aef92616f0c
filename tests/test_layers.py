"""The package has no import circles and its layers import downward only (``scripts/import_graph.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
graph_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(graph_mod)


def test_no_import_cycles():
    assert graph_mod.cycles(graph_mod.imports()) == []


def test_layers_import_downward_only():
    graph = graph_mod.imports()
    assert graph_mod.upward(graph) == []
    assert [m for m in graph if graph_mod.layer(m) is None and m not in graph_mod.FREE] == []


def test_checker_sees_function_level_imports(tmp_path):
    pkg = tmp_path / "infnet"
    (pkg / "scan").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "scan" / "__init__.py").write_text("")
    (pkg / "inference.py").write_text("from infnet.scan import report\n")
    (pkg / "scan" / "report.py").write_text("def f():\n    from infnet.inference import g\n")
    graph = graph_mod.imports(tmp_path)
    assert graph["infnet.scan.report"] == {"infnet.inference"}
    assert graph_mod.cycles(graph) == [["infnet.inference", "infnet.scan.report"]]
    assert ("infnet.scan.report", "infnet.inference") in graph_mod.upward(graph)
