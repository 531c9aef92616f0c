"""Package a finished training run as a bundled model: fp16 safetensors, registry entry, model card, README table.

    python scripts/bundle_model.py --run runs/infnet-effl2 --name infnet-effl2-semiseg \
        --command "infnet train --out runs/infnet-effl2 ..."

Evaluates the *shipped* (fp16) weights on the 48 COVID-SemiSeg test slices under both protocols; those
slices are never used for training or checkpoint selection (selection is by validation Dice on the 5-slice
val split). Every number written comes from this run.
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

from infnet.data import semiseg
from infnet.evaluate import evaluate_folders
from infnet.io.images import atomic_write_text
from infnet.models.registry import load_checkpoint, save_checkpoint
from infnet.models.weights import REGISTRY_FILE, WEIGHTS_DIR, sha256_file
from infnet.training.final_eval import evaluate_checkpoint

ROOT = Path(__file__).resolve().parents[1]
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--checkpoint", default="best.safetensors")
    ap.add_argument("--command", required=True, help="the exact training command, for the card")
    ap.add_argument("--description", default="")
    args = ap.parse_args(argv)

    cfg = json.loads((args.run / "config.json").read_text())
    with open(args.run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    model = load_checkpoint(args.run / args.checkpoint)
    meta = model.checkpoint_meta
    out = WEIGHTS_DIR / f"{args.name}.safetensors"
    save_checkpoint(model, out, extra={"input_size": cfg["train_size"], "name": args.name}, half=True)

    root = semiseg.find_dataset()
    test = semiseg.SPLITS["lung-test"]
    summary = evaluate_checkpoint(out, root / test.image_dir, root / test.mask_dir, args.run / f"eval-{args.name}")
    authors = evaluate_folders(
        root / semiseg.REFERENCE / "Results/Lung infection segmentation/Inf-Net", root / test.mask_dir, "both"
    )

    entry = {
        "name": args.name,
        "arch": meta["arch"],
        "file": out.name,
        "sha256": sha256_file(out),
        "size_bytes": out.stat().st_size,
        "input_size": cfg["train_size"],
        "normalisation": {"mean": list(model.mean), "std": list(model.std), "input": "8-bit grey slice, /255"},
        "classes": ["infection"],
        "description": args.description,
        "training_data": "COVID-SemiSeg Doctor-label, split 'train' (45 slices); val split (5) for selection",
        "licence": LICENCE,
        "command": args.command,
        "epochs": len(rows),
        "selected_epoch": meta.get("epoch"),
        "val_dice": meta.get("val_dice"),
        "train_seconds": round(sum(float(r["seconds"]) for r in rows)),
        "median_epoch_seconds": round(statistics.median(float(r["seconds"]) for r in rows), 1),
        "machine": machine(),
        "config": cfg,
        "metrics": {
            "test_set": "COVID-SemiSeg LungInfection-Test (48 slices)",
            "paper": summary["paper"],
            "standard": summary["standard"],
        },
        "authors_infnet_metrics": {"paper": authors.paper, "standard": authors.standard},
        "eval_command": f"infnet predict --model {args.name} --input <Test/Imgs> --output pred && "
        "infnet evaluate --pred pred --gt <Test/GT> --protocol both",
    }
    entries = json.loads(REGISTRY_FILE.read_text()) if REGISTRY_FILE.is_file() else []
    entries = [e for e in entries if e["name"] != args.name] + [entry]
    atomic_write_text(REGISTRY_FILE, json.dumps(sorted(entries, key=lambda e: e["name"]), indent=2) + "\n")
    atomic_write_text(WEIGHTS_DIR / f"{args.name}.md", model_card(entry))
    render_readme()
    print(json.dumps({"name": args.name, "paper": summary["paper"], "standard": summary["standard"]}, indent=2))
    return 0


PAPER_KEYS = ("meanDic", "meanSen", "meanSpe", "Sm", "meanEm", "MAE")
STANDARD_KEYS = ("dice", "iou", "sensitivity", "specificity", "precision", "hd95", "dice_pooled")


def _cells(metrics: dict, keys) -> str:
    return " | ".join(f"{metrics[k]:.3f}" for k in keys)


def _round(v, digits: int = 4):
    return v if v is None else round(v, digits)


def model_card(e: dict) -> str:
    p, s = e["metrics"]["paper"], e["metrics"]["standard"]
    a = e["authors_infnet_metrics"]
    return f"""# Model card: {e["name"]}

{e["description"]}

- Architecture: `{e["arch"]}` (Inf-Net, Fan et al. IEEE TMI 2020), {e["size_bytes"] / 1e6:.1f} MB fp16 safetensors,
  sha256 `{e["sha256"]}`
- Input: {e["input_size"]}x{e["input_size"]}, grey slice repeated to 3 channels, normalised with
  mean {e["normalisation"]["mean"]} / std {e["normalisation"]["std"]}
- Output: infection probability (sigmoid of S_3)

## Training
- Data: {e["training_data"]}. The 48 test slices were not used for training or selection.
- Command: `{e["command"]}`
- {e["epochs"]} epochs, {e["train_seconds"] / 60:.0f} min wall time on {e["machine"]} (sum of the epoch times
  in metrics.csv; median epoch {e["median_epoch_seconds"]} s: the longer epochs were slowed by other jobs sharing
  the CPU); selected epoch {e["selected_epoch"]} (validation Dice {_round(e["val_dice"])})

## Results on {e["metrics"]["test_set"]}
Measured by `scripts/bundle_model.py` on the shipped fp16 weights (equivalently: `{e["eval_command"]}`).

| protocol | Dice | Sen | Spec | S-measure | mean E-measure | MAE |
|---|---|---|---|---|---|---|
| paper (authors' MATLAB protocol) | {_cells(p, PAPER_KEYS)} |

| protocol | Dice@0.5 | IoU | sensitivity | specificity | precision | HD95 (px) | pooled Dice |
|---|---|---|---|---|---|---|---|
| standard | {_cells(s, STANDARD_KEYS)} |

The authors' Inf-Net (their published predictions, same evaluator and test slices):

| protocol | Dice | Sen | Spec | S-measure | mean E-measure | MAE |
|---|---|---|---|---|---|---|
| paper | {_cells(a["paper"], PAPER_KEYS)} |

| protocol | Dice@0.5 | IoU | sensitivity | specificity | precision | HD95 (px) | pooled Dice |
|---|---|---|---|---|---|---|---|
| standard | {_cells(a["standard"], STANDARD_KEYS)} |

## Licence and intended use
Weights: {e["licence"]}. The COVID-SemiSeg dataset is licensed for non-commercial use only; so are these
weights. Research software: not a medical device, not for clinical diagnosis.
"""


def render_readme() -> None:
    """Replace the README's model table (between markers) with the registry's."""
    from infnet.models import weights
    from infnet.models.catalog import bundled_table

    weights._registry.cache_clear()
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- models:start -->", "<!-- models:end -->"
    if start not in text:
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{bundled_table(markdown=True)}\n{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
