"""Import graph of the infnet package: cycles and layer violations (``python scripts/import_graph.py``).

Every ``import``/``from ... import`` inside ``src/infnet`` counts, including those inside functions and under
``TYPE_CHECKING`` (a lazy import hides a circle; it does not remove it). ``tests/test_layers.py`` runs the same
checks.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lower layers first; a module may import its own layer and the layers below it. The most specific prefix
# decides (``infnet.multiclass.predict`` is a predictor, the rest of ``infnet.multiclass`` trains).
LAYERS: tuple[tuple[str, ...], ...] = (
    # data and metrics: files, arrays, scores
    ("infnet.errors", "infnet.io", "infnet.metrics", "infnet.data", "infnet.multiclass.data", "infnet.evaluate"),
    # architectures, checkpoints, bundled weights
    ("infnet.models",),
    # slice predictors: backends, the protocol, the binary and multi-class slice models, the one loader
    ("infnet.backends", "infnet.predictor", "infnet.multiclass.predict"),
    # whole scans
    ("infnet.scan",),
    # the public prediction API on top of predictors and scans (Segmenter.segment_file, load_predictor)
    ("infnet.inference",),
    ("infnet.training",),
    ("infnet.semi", "infnet.multiclass", "infnet.calibration"),
    ("infnet.cli", "infnet.__main__"),
)
FREE = ("infnet", "infnet.samples", "infnet.weights")  # the package root re-exports; data packages


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the infnet modules it imports (``from pkg import sub`` names the submodule when it is one)."""
    files = {module_name(p, src): p for p in sorted((src / "infnet").rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, name, path.name == "__init__.py")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:  # `import infnet.scan.zones` and friends
                    t = t.rpartition(".")[0]
                if t.startswith("infnet") and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def layer(module: str) -> int | None:
    """The layer of ``module``: that of the longest prefix in :data:`LAYERS` naming it or a package above it."""
    best: tuple[int, int] | None = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted.

    The package root only re-exports (lazily, for ``from infnet import Segmenter``); its imports are left out,
    so ``from infnet import __version__`` in a submodule is no circle.
    """
    graph = {k: (set() if k == "infnet" else v) for k, v in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module imports a higher layer."""
    bad = []
    for a, deps in sorted(graph.items()):
        la = layer(a)
        if la is None or a in FREE:
            continue
        for b in sorted(deps):
            lb = layer(b)
            if lb is not None and b not in FREE and lb > la:
                bad.append((a, b))
    return bad


def main() -> int:
    graph = imports()
    found = cycles(graph)
    for comp in found:
        print("cycle:", " <-> ".join(comp))
    bad = upward(graph)
    for a, b in bad:
        print(f"upward: {a} imports {b}")
    unlayered = sorted(m for m in graph if layer(m) is None and m not in FREE)
    for m in unlayered:
        print("no layer:", m)
    if not (found or bad or unlayered):
        print(f"{len(graph)} modules: no cycles, layers import downward only")
    return 1 if (found or bad or unlayered) else 0


if __name__ == "__main__":
    sys.exit(main())
