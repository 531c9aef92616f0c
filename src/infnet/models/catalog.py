"""Tables of architectures and bundled models (used by `infnet models` and the README model table)."""

from __future__ import annotations

from functools import cache

from infnet.models import weights
from infnet.models.registry import create_model, list_models

PAPER_KEYS = ("meanDic", "meanSen", "meanSpe", "Sm", "meanEm", "MAE")
CLASSES = ("ggo", "consolidation")


@cache
def _model_facts(name: str) -> tuple[int, str, int]:
    """(parameter count, encoder name, input size) of a registered architecture, built once without weights."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(name)
    config = getattr(model, "config", None)
    # an ensemble names its members' architecture instead of an encoder
    encoder = getattr(config, "encoder", None) or getattr(config, "member_arch", "-")
    # 0: the model takes each slice at its own size (the density split)
    return sum(p.numel() for p in model.parameters()), str(encoder), getattr(model, "input_size", 352)


def architecture_rows(include_ablations: bool = False) -> list[dict]:
    rows = []
    for name in list_models(include_ablations=include_ablations):
        params, encoder, size = _model_facts(name)
        rows.append(dict(name=name, encoder=encoder, params_m=params / 1e6, input_size=size or "own"))
    return rows


def bundled_table(markdown: bool = True) -> str:
    """One row per bundled model: name, encoder, input, test metrics (paper and standard protocols).

    Multi-class models show "GGO / consolidation" in each metric column. Metrics are at the model's output
    temperature T; "meanDic T=1" is the raw network's (:mod:`infnet.calibration`).
    """
    names = weights.list_bundled()
    if not names:
        return "(no bundled models installed)"
    header = [
        "name",
        "arch",
        "input",
        "T",
        "paper meanDic",
        "meanDic T=1",
        "Sm",
        "meanEm",
        "MAE",
        "std Dice@0.5",
        "size (MB)",
        "licence",
    ]
    rows = []
    for name in names:
        e = weights.bundled_entry(name)
        metrics = e.get("metrics", {})
        # Multi-class models: one value per class, "GGO / consolidation".
        raw = e.get("metrics_t1", metrics)
        if e.get("task") == "multiclass":
            parts, raw_parts = [metrics[c] for c in CLASSES], [raw[c] for c in CLASSES]
        else:
            parts, raw_parts = [metrics], [raw]
        rows.append(
            [
                name,
                e["arch"],
                str(e.get("input_size", "")) if e.get("input_size") != 0 else "own",
                f"{e.get('temperature', 1.0):g}",
                _join(p.get("paper", {}).get("meanDic") for p in parts),
                _join(p.get("paper", {}).get("meanDic") for p in raw_parts),
                *(_join(p.get("paper", {}).get(k) for p in parts) for k in ("Sm", "meanEm", "MAE")),
                _join(p.get("standard", {}).get("dice") for p in parts),
                _megabytes(e.get("size_bytes", 0)),
                e.get("licence", ""),
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*r) for r in rows])


def _use(e: dict) -> str:
    """What a bundled model is for: the registry's ``use`` when it has one, else read from its entry."""
    if e.get("use"):
        return e["use"]
    name, arch, cfg = e["name"], e["arch"], e.get("config") or {}
    if name == weights.DEFAULT_MODEL:
        return "default: `infnet segment` on volumes, `predict`"
    if name == weights.DEFAULT_MULTICLASS_MODEL:
        return "default of `infnet segment --multiclass` on volumes"
    caution = "; false positives on a healthy thorax (card)" if e.get("caution") else ""
    if arch == "ensemble":
        return f"most accurate on the benchmark slices; {cfg.get('n', 3)} passes per slice{caution}"
    prior = e.get("infection_model", "")
    if arch == "density-split" and prior in weights.list_bundled():
        if weights.bundled_entry(prior).get("arch") == "ensemble":
            return "most accurate multi-class; ensemble prior, 3 passes per slice"
        return f"multi-class, prior `{prior}`"
    if e.get("task") == "multiclass":
        return "the paper's infection-guided multi-class network"
    if "semi" in name:
        return f"Semi-Inf-Net, best single model on the benchmark slices{caution}"
    return "binary infection"


def readme_table() -> str:
    """The README's bundled-model table, five columns: name, task, use, test Dice@0.5, size.

    The full table (temperature, both protocols) is :func:`bundled_table`; the model cards have everything.
    """
    names = weights.list_bundled()
    if not names:
        return "(no bundled models installed)"
    lines = ["| model | task | use | test Dice@0.5 | size |", "|---|---|---|---|---|"]
    for name in names:
        e = weights.bundled_entry(name)
        m = e.get("metrics", {})
        if e.get("task") == "multiclass":
            task = "GGO / consolidation"
            dice = " / ".join(_fmt(m.get(c, {}).get("standard", {}).get("dice")) for c in CLASSES)
        else:
            task, dice = "infection", _fmt(m.get("standard", {}).get("dice"))
        n = e.get("size_bytes", 0)
        size = f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
        shared = _shared_bytes(name)
        size += f" ({shared / 1e6:.0f} MB shared)" if shared else ""
        lines.append(f"| `{name}` | {task} | {_use(e)} | {dice} | {size} |")
    return "\n".join(lines)


def _shared_bytes(name: str) -> int:
    """Bytes of ``name``'s weights stored in another bundled model's file (an ensemble member that ships alone)."""
    own = weights.bundled_entry(name)
    if "member_files" not in own:
        return 0
    others = {weights.bundled_entry(n).get("file") for n in weights.list_bundled() if n != name}
    return sum((weights.WEIGHTS_DIR / f["file"]).stat().st_size for f in own["member_files"] if f["file"] in others)


def _megabytes(n: int) -> str:
    """Size in MB with one decimal, or enough digits to show a tiny file (a density split: 0.0006)."""
    return f"{n / 1e6:.1f}" if n >= 1e5 else f"{n / 1e6:.4f}"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _join(values) -> str:
    return " / ".join(_fmt(v) for v in values)
