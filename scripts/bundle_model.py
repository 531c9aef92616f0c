"""Package a finished training run as a bundled model: fp16 safetensors, registry entry, model card, README table.

    python scripts/bundle_model.py --run runs/infnet-effl2 --name infnet-effl2-semiseg \
        --command "infnet train --out runs/infnet-effl2 ..."
    python scripts/bundle_model.py --run runs/mc/run --name fcn8s-effl2-multiclass-semiseg \
        --infection-model infnet-effl2-semi-semiseg --command "infnet multiclass train ..."

Evaluates the *shipped* (fp16) weights on the 48 COVID-SemiSeg test slices under both protocols (binary models:
LungInfection-Test; multi-class models: GGO vs GT-1 and consolidation vs GT-2 of MultiClassInfection-Test, with
the infection prior from ``--infection-model``); those slices are never used for training. The checkpoint is the
run's best by validation Dice on the 5-slice val split unless ``--checkpoint`` says otherwise (``--selection``
then tells the card how it was chosen). ``--tta-metrics`` adds the test scores with mirror + scale TTA.
Every number written comes from this run. An ensemble is stored as one checkpoint per member (registry
``member_files``); a member that also ships alone is that model's file, so its weights are stored once.
Re-bundling such a single model first gives the ensemble its own copy of the old weights (``detach_members``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from model_card import model_card, render_tables  # scripts/model_card.py

from infnet.data import semiseg
from infnet.evaluate import evaluate_folders
from infnet.io.images import atomic_write_bytes, atomic_write_text
from infnet.models.registry import load_checkpoint, read_checkpoint_meta, save_checkpoint
from infnet.models.weights import REGISTRY_FILE, WEIGHTS_DIR, combined_sha256, sha256_file
from infnet.training.final_eval import evaluate_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TRAINING_DATA = "COVID-SemiSeg Doctor-label, split 'train' (45 slices); val split (5) for selection"
LICENCE = "non-commercial use only (trained on COVID-SemiSeg, whose licence forbids commercial use)"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores of {cpu}, {platform.system()}, no GPU"


def _epoch_rows(root: Path) -> list[dict]:
    """Epoch rows of every metrics.csv under ``root`` (a Semi-Inf-Net run has one per training step)."""
    rows = []
    for path in sorted(root.rglob("metrics.csv")):
        with open(path) as fh:
            rows += list(csv.DictReader(fh))
    return rows


def _per_class(m: dict) -> dict:
    """Paper and standard summaries per class of an ``evaluate_multiclass`` result."""
    from infnet.multiclass.evaluate import CLASS_SPLITS

    return {c: {"paper": m[c]["paper"], "standard": m[c]["standard"]} for c in CLASS_SPLITS}


def _evaluate(args, out: Path, task: str, root: Path) -> tuple[dict, dict]:
    """(metrics of the shipped weights, the authors' published predictions under the same evaluator)."""
    ref = root / semiseg.REFERENCE / "Results"
    if task == "multiclass":
        from infnet.multiclass.evaluate import CLASS_SPLITS, evaluate_multiclass

        m = evaluate_multiclass(out, args.run / f"eval-{args.name}", infection_model=args.infection_model, data=root)
        folders = {"ggo": "Ground-glass opacities", "consolidation": "Consolidation"}
        authors = {}
        for cls, split in CLASS_SPLITS.items():
            res = evaluate_folders(
                ref / "Multi-class lung infection segmentation" / folders[cls] / args.authors_model,
                root / semiseg.SPLITS[split].mask_dir,
                "both",
            )
            authors[cls] = {"paper": res.paper, "standard": res.standard}
        metrics = {"test_set": "COVID-SemiSeg MultiClassInfection-Test (48 slices; GGO: GT-1, consolidation: GT-2)"}
        metrics.update(_per_class(m))
        return metrics, authors
    test = semiseg.SPLITS["lung-test"]
    summary = evaluate_checkpoint(out, root / test.image_dir, root / test.mask_dir, args.run / f"eval-{args.name}")
    res = evaluate_folders(ref / "Lung infection segmentation" / args.authors_model, root / test.mask_dir, "both")
    metrics = {
        "test_set": "COVID-SemiSeg LungInfection-Test (48 slices)",
        "paper": summary["paper"],
        "standard": summary["standard"],
    }
    return metrics, {"paper": res.paper, "standard": res.standard}


def _presentation(cfg: dict, old: dict) -> bool:
    """Trained with the robust presentation recipe: the run's config, or for an ensemble every member's run."""
    if cfg.get("model") != "ensemble":
        return bool(cfg.get("presentation", False))
    configs = [ROOT / Path(m).parent / "config.json" for m in cfg.get("members", [])]
    if configs and all(c.is_file() for c in configs):
        return all(json.loads(c.read_text()).get("presentation", False) for c in configs)
    return bool(old.get("presentation", False))  # members' runs gone: keep what the entry said


def _val_dice(meta: dict, rows: list[dict]) -> float | None:
    """The checkpoint's validation Dice: its metadata, else (last.safetensors of older runs) its metrics.csv row."""
    if meta.get("val_dice") is not None:
        return meta["val_dice"]
    row = next((r for r in rows if int(r["epoch"]) == meta.get("epoch")), None)
    return float(row["val_dice"]) if row and row["val_dice"] not in ("", "nan") else None


TTA_SCALES = (0.75, 1.0, 1.25)  # the training scales


def _evaluate_tta(args, out: Path, task: str, root: Path) -> dict:
    """Test metrics of the shipped weights with mirror + scale TTA (``--tta --tta-scales``; multi-class: of both
    the model and its infection model, as ``infnet multiclass evaluate --tta``)."""
    tta = {"tta": {"mirror": True, "scales": list(TTA_SCALES)}}
    if task == "multiclass":
        from infnet.multiclass.evaluate import evaluate_multiclass

        m = evaluate_multiclass(
            out,
            args.run / f"eval-{args.name}-tta",
            infection_model=args.infection_model,
            data=root,
            tta=True,
            tta_scales=list(TTA_SCALES),
        )
        return tta | _per_class(m)
    test = semiseg.SPLITS["lung-test"]
    summary = evaluate_checkpoint(
        out,
        root / test.image_dir,
        root / test.mask_dir,
        args.run / f"eval-{args.name}-tta",
        tta=True,
        tta_scales=TTA_SCALES,
    )
    return tta | {"paper": summary["paper"], "standard": summary["standard"]}


def _temperature(args, out: Path, task: str, root: Path) -> tuple[float, dict]:
    """The temperature to ship: ``--temperature`` or, for 'auto', the best val meanDic of the shipped weights."""
    from infnet.calibration import validation_temperature
    from infnet.inference import Segmenter

    if args.temperature != "auto":
        return float(args.temperature), {}
    if task == "multiclass":
        from infnet.multiclass.predict import MultiClassSegmenter

        predictor = MultiClassSegmenter.from_pretrained(out, infection_model=args.infection_model, temperature=1.0)
    else:
        predictor = Segmenter.from_pretrained(out, temperature=1.0)
    best, scores = validation_temperature(predictor, data=root)
    return best, {str(t): round(v, 4) for t, v in scores.items()}


def store_members(name: str, out: Path, entries: list[dict]) -> dict:
    """Split the one-file bundled ensemble ``out`` into one checkpoint per member and delete ``out``.

    A member whose tensors equal a bundled single model's is that model's file. Returns the registry fields
    (``member_files``, the combined ``sha256``, ``size_bytes``: all member files).
    """
    import torch
    from safetensors.torch import load_file, save

    meta = read_checkpoint_meta(out)
    tensors = load_file(str(out))
    member_arch, member_config = meta["config"]["member_arch"], meta["config"]["member_config"]
    singles = {
        e["file"]: load_file(str(WEIGHTS_DIR / e["file"]))
        for e in entries
        if e["name"] != name and e["arch"] == member_arch and "file" in e
    }
    files = []
    for i in range(meta["config"]["n"]):
        prefix = f"members.{i}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        same = [
            f
            for f, single in singles.items()
            if single.keys() == state.keys() and all(torch.equal(single[k], v) for k, v in state.items())
        ]
        if same:
            path = WEIGHTS_DIR / same[0]
        else:
            path = WEIGHTS_DIR / f"{name}.member{i + 1}.safetensors"
            info = {"arch": member_arch, "config": member_config, "input_size": meta["input_size"]}
            info["name"] = f"{name} member {i + 1}"
            atomic_write_bytes(path, save(state, metadata={"infnet": json.dumps(info)}))
        files.append({"file": path.name, "sha256": sha256_file(path)})
    out.unlink()
    return {"member_files": files, "sha256": combined_sha256([f["sha256"] for f in files]), "size_bytes": _size(files)}


def _size(files: list[dict]) -> int:
    return sum((WEIGHTS_DIR / f["file"]).stat().st_size for f in files)


def detach_members(name: str, entries: list[dict]) -> tuple[list[dict], list[str]]:
    """Give every ensemble whose member is ``name``'s file its own copy of it, before ``name`` is re-bundled.

    The copy is byte-identical (same sha256, so the ensemble's identity and outputs do not change). Returns the
    updated registry entries and the names of the ensembles changed. Re-bundle an ensemble afterwards to have it
    use the new weights (``store_members`` then points its member at the new file again).
    """
    own_file, holders, updated = f"{name}.safetensors", [], []
    for e in entries:
        files = e.get("member_files", [])
        if any(f["file"] == own_file for f in files):
            e = {**e, "member_files": [dict(f) for f in files]}
            for i, f in enumerate(e["member_files"]):
                if f["file"] == own_file:
                    copy = WEIGHTS_DIR / f"{e['name']}.member{i + 1}.safetensors"
                    atomic_write_bytes(copy, (WEIGHTS_DIR / own_file).read_bytes())
                    f["file"] = copy.name
            e["size_bytes"] = _size(e["member_files"])
            holders.append(e["name"])
        updated.append(e)
    return updated, holders


def _median_seconds(rows: list[dict]) -> float | None:
    return round(statistics.median(float(r["seconds"]) for r in rows), 1) if rows else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="trainer run directory (config.json, metrics.csv)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--checkpoint", default="best.safetensors")
    ap.add_argument("--command", help="the exact training command, for the card (default: the existing entry's)")
    ap.add_argument("--description", help="(default: the existing entry's, else empty)")
    ap.add_argument("--training-data", help=f"(default: the existing entry's, else '{TRAINING_DATA}')")
    ap.add_argument(
        "--time-root", type=Path, nargs="+", help="sum epoch times of every metrics.csv under these (default --run)"
    )
    ap.add_argument(
        "--tta-metrics",
        action="store_true",
        help="also record test metrics with mirror + scale TTA (0.75/1/1.25) at the shipped T",
    )
    ap.add_argument(
        "--selection",
        help="how the checkpoint was chosen, for the card (default: the existing entry's, else the best "
        "validation Dice)",
    )
    ap.add_argument("--infection-model", help="multi-class models: the bundled binary model giving the prior")
    ap.add_argument("--authors-model", help="the authors' published predictions to compare with")
    ap.add_argument(
        "--temperature",
        default="auto",
        help="output temperature stored with the weights: a number, or 'auto' = the best val meanDic "
        "(infnet.calibration.validation_temperature); test metrics are reported at T = 1 and at this T",
    )
    args = ap.parse_args(argv)
    # Re-bundling a model (e.g. to add a temperature) keeps the texts of its current registry entry.
    old_entries = json.loads(REGISTRY_FILE.read_text()) if REGISTRY_FILE.is_file() else []
    old = {e["name"]: e for e in old_entries}.get(args.name, {})
    args.command = args.command or old.get("command")
    if not args.command:
        ap.error(f"--command is required: '{args.name}' has no registry entry yet")
    args.description = args.description if args.description is not None else old.get("description", "")
    args.training_data = args.training_data or old.get("training_data", TRAINING_DATA)
    args.infection_model = args.infection_model or old.get("infection_model")
    args.authors_model = args.authors_model or old.get("authors_model")
    args.selection = args.selection or old.get("selection")

    old_entries, holders = detach_members(args.name, old_entries)
    if holders:  # persisted before NAME.safetensors is overwritten, so they never point at the new weights
        atomic_write_text(REGISTRY_FILE, json.dumps(sorted(old_entries, key=lambda e: e["name"]), indent=2) + "\n")
        print(f"{', '.join(holders)}: kept the old '{args.name}' weights as their own member file", file=sys.stderr)
    cfg = json.loads((args.run / "config.json").read_text())
    rows = [r for root in (args.time_root or [args.run]) for r in _epoch_rows(root)]
    with open(args.run / "metrics.csv") as fh:
        own_rows = list(csv.DictReader(fh))
    model = load_checkpoint(args.run / args.checkpoint)
    meta = model.checkpoint_meta
    task = meta.get("task", "binary")
    if task == "multiclass" and not args.infection_model:
        ap.error("a multi-class model needs --infection-model (a bundled binary model)")
    args.authors_model = args.authors_model or ("Semi-Inf-Net_FCN8s_1100" if task == "multiclass" else "Inf-Net")
    out = WEIGHTS_DIR / f"{args.name}.safetensors"
    # A fitted density split records its input size (0: each slice's own) in the checkpoint, not as train_size.
    input_size = cfg["train_size"] if "train_size" in cfg else meta["input_size"]
    extra = {"input_size": input_size, "name": args.name}
    if task == "multiclass":
        extra.update(task="multiclass", classes=meta.get("classes"))
        if meta.get("soft_prior"):
            extra["soft_prior"] = True
    save_checkpoint(model, out, extra=extra, half=True)
    root = semiseg.find_dataset()
    temperature, val_scores = _temperature(args, out, task, root)
    metrics_t1, authors = _evaluate(args, out, task, root)
    metrics = metrics_t1
    if temperature != 1.0:
        save_checkpoint(model, out, extra={**extra, "temperature": temperature}, half=True)
        metrics, _ = _evaluate(args, out, task, root)

    if meta["arch"] == "ensemble":
        stored = store_members(args.name, out, old_entries)
    else:
        stored = {"file": out.name, "sha256": sha256_file(out), "size_bytes": out.stat().st_size}
    entry = {
        "name": args.name,
        "arch": meta["arch"],
        "task": task,
        **stored,
        "input_size": input_size,
        "normalisation": {"mean": list(model.mean), "std": list(model.std), "input": "8-bit grey slice, /255"},
        "classes": ["ggo", "consolidation"] if task == "multiclass" else ["infection"],
        "description": args.description,
        "training_data": args.training_data,
        "licence": LICENCE,
        "command": args.command,
        "epochs": len(own_rows),
        "training_epochs_all_steps": len(rows),
        "selected_epoch": meta.get("epoch"),
        "val_dice": _val_dice(meta, own_rows),
        "train_seconds": round(sum(float(r["seconds"]) for r in rows)),
        # None: nothing trained in this step and no member run at hand (an ensemble of bundled models)
        "median_epoch_seconds": _median_seconds(own_rows),
        "machine": machine(),
        "config": cfg,
        "presentation": _presentation(cfg, old),
        "temperature": temperature,
        "temperature_val_meanDic": val_scores,
        "metrics": metrics,
        "metrics_t1": metrics_t1,
        **({"metrics_tta": _evaluate_tta(args, out, task, root)} if args.tta_metrics else {}),
        **({"selection": args.selection} if args.selection else {}),
        "authors_model": args.authors_model,
        "authors_metrics": authors,
        **{k: old[k] for k in ("use", "caution") if k in old},  # hand-written texts outlive a re-bundle
    }
    if task == "multiclass":
        entry["infection_model"] = args.infection_model
        entry["eval_command"] = f"infnet multiclass evaluate --model {args.name} --out eval"
    else:
        entry["eval_command"] = (
            f"infnet predict --model {args.name} --input <Test/Imgs> --output pred && "
            "infnet evaluate --pred pred --gt <Test/GT> --protocol both"
        )
    entries = [e for e in old_entries if e["name"] != args.name] + [entry]
    atomic_write_text(REGISTRY_FILE, json.dumps(sorted(entries, key=lambda e: e["name"]), indent=2) + "\n")
    atomic_write_text(WEIGHTS_DIR / f"{args.name}.md", model_card(entry))
    render_readme()
    print(json.dumps({"name": args.name, "metrics": metrics}, indent=2))
    return 0


def render_readme() -> None:
    """The README's model table and the full one in docs/results.md (``model_card.render_tables``)."""
    render_tables()


if __name__ == "__main__":
    sys.exit(main())
