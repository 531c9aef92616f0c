"""The results table of every trained model (binary and multi-class), generated from the run directories.

    .venv/bin/python benchmarks/reproduce.py commands [KEY ...]   # print the training commands
    .venv/bin/python benchmarks/reproduce.py collect              # evaluate runs/ into benchmarks/runs/<key>/
    .venv/bin/python benchmarks/reproduce.py render               # write benchmarks/reproduce.md
    .venv/bin/python benchmarks/reproduce.py                      # collect + render
    .venv/bin/python benchmarks/reproduce.py ablation             # the Table IV section (benchmarks/ablation.py)

``collect`` reads each run directory (config.json, every metrics.csv for the training time, best.safetensors),
evaluates the checkpoint on the 48 test slices when the run has no test metrics yet (binary: LungInfection-Test;
multi-class: GGO vs GT-1 and consolidation vs GT-2 of MultiClassInfection-Test, the infection prior coming from
``INFECTION_MODEL`` as at inference) and stores a small summary.json per run in ``benchmarks/runs/<key>/``
(run directories are not committed). ``render`` builds the table from those summaries and puts the authors'
published values (their ``*_result.txt`` files in reference-outputs) next to ours. No number is typed by hand.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import ablation  # benchmarks/ablation.py
from reproduce_specs import LUNG_TEST, SPECS  # benchmarks/reproduce_specs.py

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "benchmarks" / "runs"
RUNS = ROOT / "runs"
INFECTION_MODEL = "infnet-effl2-semiseg"  # the best bundled binary model by validation Dice gives the prior


def _data_root() -> Path:
    from infnet.data.semiseg import find_dataset

    return find_dataset()


def command(key: str, data: Path | None = None) -> str:
    """The spec's training command, with the dataset root filled in."""
    return SPECS[key]["command"].format(data=data or _data_root())


def _epochs(*roots: Path) -> tuple[int, float]:
    """(epochs, seconds) summed over every metrics.csv under ``roots``."""
    n, seconds = 0, 0.0
    for path in sorted(p for root in roots for p in root.rglob("metrics.csv")):
        with open(path) as fh:
            for row in csv.DictReader(fh):
                n += 1
                seconds += float(row["seconds"])
    return n, seconds


def _test_metrics(spec: dict, run: Path, data: Path, checkpoint: str = "best") -> dict:
    """Test metrics of the run's ``checkpoint`` (best or last; evaluated here when the run has none yet)."""
    if spec["task"] == "multiclass":
        from infnet.multiclass.evaluate import evaluate_multiclass

        prior = spec.get("infection_model", INFECTION_MODEL)
        name = "eval-multiclass" + ("" if checkpoint == "best" else f"-{checkpoint}")
        path = run / (name + ("" if prior == INFECTION_MODEL else f"-{prior}")) / "metrics.json"
        if not path.is_file():
            ckpt = run / f"{checkpoint}.safetensors"
            evaluate_multiclass(ckpt, path.parent, infection_model=prior, data=data)
        m = json.loads(path.read_text())
        return {c: {"paper": m[c]["paper"], "standard": m[c]["standard"]} for c in ("ggo", "consolidation")} | {
            "infection_model": prior
        }
    path = run / ("eval" if checkpoint == "best" else f"eval-{checkpoint}") / "metrics.json"
    if not path.is_file():
        from infnet.training.final_eval import evaluate_checkpoint

        ckpt = run / f"{checkpoint}.safetensors"
        evaluate_checkpoint(ckpt, data / LUNG_TEST / "Imgs", data / LUNG_TEST / "GT", path.parent)
    m = json.loads(path.read_text())
    return {"paper": m["paper"], "standard": m["standard"]}


def _semi_settings(root: Path) -> dict | None:
    """The Semi-Inf-Net settings (semi.json) of a run, with the number of fine-tuning rounds done."""
    path = root / "semi.json" if (root / "semi.json").is_file() else root.parent / "semi.json"
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text())
    cfg["rounds_done"] = len(list((path.parent / "rounds").glob("r*/done.json")))
    # Wall time from the first file the run wrote (plan or manifest) to result.json, labelling included.
    starts = [f.stat().st_mtime for f in (path.parent / "plan.json", path.parent / "manifest.jsonl") if f.is_file()]
    result = path.parent / "result.json"
    if starts and result.is_file():
        cfg["wall_minutes"] = round((result.stat().st_mtime - min(starts)) / 60)
    return cfg


def collect(keys: list[str]) -> None:
    data = _data_root()
    for key in keys:
        spec = SPECS[key]
        run = RUNS / spec["run"]
        if not (run / "best.safetensors").is_file():
            print(f"{key}: no finished run in {run}; skipped")
            continue
        n, seconds = _epochs(*(RUNS / r for r in spec.get("time_roots", [spec.get("time_root", spec["run"])])))
        semi = _semi_settings(RUNS / spec.get("semi_root", spec.get("time_root", spec["run"])))
        if semi and "semi_override" in spec:  # a re-run fine-tuning step: its settings, no whole-run wall time
            semi = {**semi, **spec["semi_override"], "wall_minutes": "-"}
        summary = dict(
            key=key,
            task=spec["task"],
            command=spec["command"].replace("{data}", "$DATA"),
            epochs=n,
            train_seconds=round(seconds),
            config=json.loads((run / "config.json").read_text()),
            semi=semi,
            test=_test_metrics(spec, run, data),
        )
        if (run / "last.safetensors").is_file():
            summary["test_last"] = _test_metrics(spec, run, data, "last")
        out = STORE / key
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        shutil.copyfile(run / "metrics.csv", out / "metrics.csv")
        print(f"{key}: {n} epochs, {seconds / 60:.0f} min -> {out / 'summary.json'}")


def _authors() -> dict[str, dict]:
    """The authors' published values: binary rows and per-class rows (GGO = -1, consolidation = -2 files)."""
    from infnet.data.semiseg import REFERENCE
    from infnet.metrics.reference import parse_result_txt

    res = _data_root() / REFERENCE / "EvaluateResults"
    out: dict[str, dict] = {"binary": {}, "ggo": {}, "consolidation": {}}
    for sub in ("previous/", ""):
        out["binary"].update(parse_result_txt(res / f"{sub}LungInfection-Test-1_result.txt"))
        out["ggo"].update(parse_result_txt(res / f"{sub}MultiClassInfection-Test-1_result.txt"))
        out["consolidation"].update(parse_result_txt(res / f"{sub}MultiClassInfection-Test-2_result.txt"))
    return out


PAPER_KEYS = ("meanDic", "meanSen", "meanSpe", "Sm", "meanEm", "MAE")


def _authors_std_dice(paper: str, cls: str | None) -> float | None:
    """Standard Dice@0.5 of the authors' published predictions (our evaluator), where they are published."""
    from infnet.data import semiseg
    from infnet.evaluate import evaluate_folders

    root = _data_root()
    res = root / semiseg.REFERENCE / "Results"
    if cls is None:
        pred, gt = res / "Lung infection segmentation" / paper, root / LUNG_TEST / "GT"
    else:
        sub = {"ggo": "Ground-glass opacities", "consolidation": "Consolidation"}[cls]
        split = {"ggo": "multiclass-test-ggo", "consolidation": "multiclass-test-consolidation"}[cls]
        pred, gt = res / "Multi-class lung infection segmentation" / sub / paper, root / semiseg.SPLITS[split].mask_dir
    if not pred.is_dir():
        return None
    return evaluate_folders(pred, gt, "standard").standard["dice"]


def _row(name: str, m: dict | None, std: float | None, minutes: str) -> str:
    cells = [f"{m[k]:.3f}" if m and k in m else "-" for k in PAPER_KEYS]
    return f"| {name} | " + " | ".join(cells) + f" | {'-' if std is None else f'{std:.3f}'} | {minutes} |"


def render() -> str:
    authors = _authors()
    summaries = {p.parent.name: json.loads(p.read_text()) for p in sorted(STORE.glob("*/summary.json"))}
    head = "| model | " + " | ".join(PAPER_KEYS) + " | Dice@0.5 | train min |\n|---|" + "---|" * (len(PAPER_KEYS) + 2)
    lines = [
        "# Results: every trained model on the 48 COVID-SemiSeg test slices",
        "",
        "Generated by `.venv/bin/python benchmarks/reproduce.py` from the run directories (summaries in",
        "`benchmarks/runs/<key>/summary.json`); do not edit by hand. Paper protocol (the authors' MATLAB evaluator,",
        "re-implemented and checked against their published metric files) plus the standard Dice at p >= 0.5.",
        "Rows in *italics* are the authors' published values (their `*_result.txt`; Dice@0.5 is our evaluator on",
        "their published predictions), not ours. Training time is the sum of the epoch times on this 2-core CPU",
        "while 2-4 trainings shared it, so it is pessimistic (pseudo-labelling passes and test evaluation",
        "excluded). `$DATA` = the COVID-SemiSeg root.",
        "",
    ]
    sections = [("binary", "Lung infection (binary), LungInfection-Test", [None])]
    sections += [("multiclass", "Multi-class, MultiClassInfection-Test", ["ggo", "consolidation"])]
    for task, title, classes in sections:
        for cls in classes:
            label = {None: "", "ggo": " - ground-glass opacity (GT-1)", "consolidation": " - consolidation (GT-2)"}[cls]
            lines += [f"## {title}{label}", "", head]
            seen_group, shown_paper = None, set()
            for key, spec in SPECS.items():
                if spec["task"] != task or key not in summaries:
                    continue
                s = summaries[key]
                m = s["test"] if cls is None else s["test"][cls]
                if spec["group"] != seen_group:
                    seen_group = spec["group"]
                    lines.append(f"| **{seen_group}** |" + " |" * (len(PAPER_KEYS) + 2))
                minutes = s["train_seconds"] / 60
                lines.append(
                    _row(f"`{key}`", m["paper"], m["standard"]["dice"], "<1" if minutes < 0.5 else f"{minutes:.0f}")
                )
                paper = spec.get("paper")
                table = authors["binary" if cls is None else cls]
                if paper and paper in table and paper not in shown_paper:
                    shown_paper.add(paper)
                    lines.append(_row(f"*authors' {paper}*", table[paper], _authors_std_dice(paper, cls), "-"))
            lines.append("")
    lines += _bundled()
    lines += _tradeoff(summaries)
    lines += _selection(summaries) + _selection_multiclass(summaries)
    lines += ["## Commands", ""]
    for key in SPECS:
        if key in summaries:
            s = summaries[key]
            fitted = s["config"].get("model") == "density-split"  # fitted in seconds, not trained in epochs
            done = f"fitted in {s['train_seconds']} s" if fitted else f"{s['epochs']} epochs in all steps"
            lines.append(f"- `{key}`: `{s['command']}` ({done})")
    others = [
        f"`{k}` (`{s['test']['infection_model']}`)"
        for k, s in summaries.items()
        if s["task"] == "multiclass" and s["test"].get("infection_model", INFECTION_MODEL) != INFECTION_MODEL
    ]
    note = f"; except {', '.join(others)}" if others else ""
    lines += ["", f"Multi-class models are evaluated with the infection prior of `{INFECTION_MODEL}`{note}.", ""]
    return "\n".join(lines)


def _best_epoch(rows: list[dict]) -> tuple[int, float] | None:
    """(epoch, val Dice) that best.safetensors holds: the last epoch with the highest validation Dice."""
    scored = [(int(r["epoch"]), float(r["val_dice"])) for r in rows if r["val_dice"] not in ("", "nan")]
    return max(scored, key=lambda r: (r[1], r[0])) if scored else None


def _best_and_last(summaries: dict, task: str):
    """(key, best-val (epoch, val Dice), final metrics.csv row, best test metrics, final test metrics) per run of
    ``task`` that was validated and evaluated at both checkpoints."""
    for key, s in summaries.items():
        if "test_last" not in s or s["task"] != task:
            continue
        with open(STORE / key / "metrics.csv") as fh:
            epochs = list(csv.DictReader(fh))
        best = _best_epoch(epochs)
        if best is not None:  # without validation best and last are the same checkpoint
            yield key, best, epochs[-1], s["test"], s["test_last"]


def _selection_row(key: str, best: tuple[int, float], last: dict, b: tuple, f: tuple) -> str:
    """One table row: the best-val epoch and its two test scores ``b``, then the final epoch's ``f``."""
    return (
        f"| `{key}` | {best[0]} ({best[1]:.3f}) | {b[0]:.3f} | {b[1]:.3f} | "
        f"{last['epoch']} ({float(last['val_dice']):.3f}) | {f[0]:.3f} | {f[1]:.3f} |"
    )


def _selection(summaries: dict) -> list[str]:
    """Binary runs: the checkpoint with the best validation Dice against the final epoch's, on the test slices."""
    rows, diffs = [], []
    for key, best, last, b, f in _best_and_last(summaries, "binary"):
        diffs.append(f["standard"]["dice"] - b["standard"]["dice"])
        cells = [(m["paper"]["meanDic"], m["standard"]["dice"]) for m in (b, f)]
        rows.append(_selection_row(key, best, last, *cells))
    if not rows:
        return []
    better, mean = sum(d >= 0 for d in diffs), sum(diffs) / len(diffs)
    verdict = (
        "five validation slices do not pick better checkpoints than the final epoch"
        if better > len(rows) / 2 and mean >= 0
        else "the validation choice holds up"
    )
    return [
        "## Checkpoint selection: best validation epoch or the final epoch",
        "",
        "Every row above is the checkpoint with the best validation Dice (5 val slices). The paper keeps the final",
        "epoch instead. Both on the test slices (binary runs; validation Dice in brackets):",
        "",
        "| run | best-val epoch | meanDic | Dice@0.5 | final epoch | meanDic | Dice@0.5 |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"The final epoch scores at least as well (Dice@0.5) in {better} of {len(rows)} runs, by {mean:+.3f} on "
        f"average: {verdict}.",
        "",
    ]


def _selection_multiclass(summaries: dict) -> list[str]:
    """Multi-class runs: best-validation checkpoint against the final epoch, GGO and consolidation meanDic."""
    rows, diffs = [], []
    for key, best, last, b, f in _best_and_last(summaries, "multiclass"):
        diffs.append(f["ggo"]["paper"]["meanDic"] - b["ggo"]["paper"]["meanDic"])
        cells = [(m["ggo"]["paper"]["meanDic"], m["consolidation"]["paper"]["meanDic"]) for m in (b, f)]
        rows.append(_selection_row(key, best, last, *cells))
    if not rows:
        return []
    better, mean = sum(d >= 0 for d in diffs), sum(diffs) / len(diffs)
    return [
        "Multi-class runs (paper-protocol meanDic; validation Dice = mean of GGO and consolidation, in brackets):",
        "",
        "| run | best-val epoch | GGO | consolidation | final epoch | GGO | consolidation |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"The final epoch's GGO is at least as good in {better} of {len(rows)} runs, by {mean:+.3f} on average.",
        "",
    ]


def _bundled() -> list[str]:
    """The shipped models at their output temperature T and at T = 1, from the registry (fp16 weights)."""
    from infnet.models import weights

    rows = []
    for name in weights.list_bundled():
        e = weights.bundled_entry(name)
        raw = e.get("metrics_t1", e["metrics"])
        parts = [("", e["metrics"], raw)]
        if e.get("task") == "multiclass":
            parts = [(f" {c}", e["metrics"][c], raw[c]) for c in ("ggo", "consolidation")]
        for label, m, r in parts:
            cells = [r["paper"]["meanDic"], m["paper"]["meanDic"], r["paper"]["Sm"], m["paper"]["Sm"]]
            cells += [r["paper"]["MAE"], m["paper"]["MAE"], m["standard"]["dice"]]
            rows.append(
                f"| `{name}`{label} | {e.get('temperature', 1.0):g} | " + " | ".join(f"{v:.3f}" for v in cells) + " |"
            )
    return [
        "## Bundled models at their output temperature",
        "",
        "The shipped fp16 weights (`src/infnet/weights/registry.json`, written by `scripts/bundle_model.py`). A",
        "temperature T maps the logits z to sigmoid(T z) (softmax for multi-class; `infnet.calibration`): masks at",
        "0.5 and the most likely class stay the same, the maps get sharper. The paper protocol averages Dice over",
        "256 thresholds of each min-max normalised map, so meanDic rises towards Dice@0.5 with T while the",
        "S-measure falls. Binary models: T is the best validation meanDic (5 val slices) of a grid up to 8.",
        "Multi-class models keep T = 1 unless bundled with the same search (the robust FCN8s); their infected-pixel",
        "rule (GGO + consolidation >= 0.5) moves with T, so their Dice@0.5 can too.",
        "",
        "| model | T | meanDic T=1 | meanDic | Sm T=1 | Sm | MAE T=1 | MAE | Dice@0.5 |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _scales(semi: dict) -> str:
    ft, size = semi.get("finetune_rates"), semi.get("finetune_size", 352)
    text = str(semi["rates"]) if not ft or ft == semi["rates"] else f"{semi['rates']}, fine-tune {ft}"
    return text if size == 352 else f"{text} of {size}"


def _tradeoff(summaries: dict) -> list[str]:
    """Semi-Inf-Net settings against their cost, next to the paper's setting."""
    from infnet.semi.config import PAPER_SETTING

    rows = []
    for key, s in summaries.items():
        semi = s.get("semi")
        if not semi:
            continue
        alg1_only = key.endswith("-alg1")
        source = "published" if semi["from_published"] else f"Algorithm 1, K={semi['k']}, cap {semi['round_cap']}"
        steps = "rounds only" if alg1_only else f"{semi['pretrain_epochs']} + {semi['finetune_epochs']}"
        m = s["test"]
        wall = "-" if alg1_only else semi.get("wall_minutes", "-")  # the run's wall time covers the two-step too
        rows.append(
            f"| `{key}` | {source} | {semi['rounds_done'] if not semi['from_published'] else 0} | {steps} | "
            f"{_scales(semi)} | {s['train_seconds'] / 60:.0f} min ({wall} min wall) | "
            f"{m['paper']['meanDic']:.3f} | "
            f"{m['standard']['dice']:.3f} |"
        )
    if not rows:
        return []
    paper = PAPER_SETTING
    return [
        "## Semi-Inf-Net: budget against the paper's setting",
        "",
        "| run | pseudo-labels | rounds | pre-train + fine-tune epochs | scales | epoch time (wall, CPU shared) "
        "| meanDic | Dice@0.5 |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        f"| paper (`infnet semi --paper`) | Algorithm 1, K={paper['k']}, no cap | {-(-1600 // paper['k'])} | "
        f"{paper['pretrain_epochs']} + {paper['finetune_epochs']} | {paper['rates']} | about 50 GPU-hours "
        "(the authors' report, not measured here) | 0.739 (authors) | - |",
        "",
    ]


REPORT = ROOT / "benchmarks" / "reproduce.md"
ABLATION_MARK = "<!-- Table IV: benchmarks/reproduce.py ablation -->"


def _parts() -> tuple[str, str]:
    """(main tables, Table IV section) of the current reproduce.md, either empty when absent."""
    text = REPORT.read_text() if REPORT.is_file() else ""
    main, _, table_iv = text.partition(ABLATION_MARK)
    return main.rstrip("\n"), table_iv.strip("\n")


def _write(main: str, table_iv: str) -> None:
    from infnet.io.images import atomic_write_text

    text = main.rstrip("\n") + "\n" + (f"\n{ABLATION_MARK}\n\n{table_iv.rstrip()}\n" if table_iv else "")
    atomic_write_text(REPORT, text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    action = argv[0] if argv else "all"
    keys = [] if action == "ablation" else argv[1:] or list(SPECS)
    unknown = [k for k in keys if k not in SPECS]
    if unknown:
        print(f"unknown keys: {', '.join(unknown)}; choose from: {', '.join(SPECS)}", file=sys.stderr)
        return 2
    if action == "ablation":  # Table IV: its own section, kept when the main tables are re-rendered
        _write(_parts()[0], "\n".join(ablation.render()))
        return 0
    if action == "commands":
        data = _data_root()
        for key in keys:
            print(command(key, data))
        return 0
    if action in ("collect", "all"):
        collect(keys)
    if action in ("render", "all"):
        if not any((STORE / k / "summary.json").is_file() for k in SPECS):
            # the summaries of these runs predate benchmarks/runs/ being committed: keep the tables as rendered
            # then, except the bundled models' section, which comes from the registry alone
            main_text, table_iv = _parts()
            head, sep, rest = main_text.partition(_bundled()[0])
            tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
            if sep:
                _write(head + "\n".join(_bundled()).rstrip("\n") + "\n" + tail, table_iv)
            print("no run summaries in benchmarks/runs/<key>/: only the bundled models' table was rewritten",
                  file=sys.stderr)  # fmt: skip
            return 0
        _write(render(), _parts()[1])
        print(f"wrote {ROOT / 'benchmarks' / 'reproduce.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
