"""Evaluate the authors' published predictions with our evaluator and print them next to the authors' numbers.

    .venv/bin/python benchmarks/reproduce_reference.py

Prints a Markdown table (paper protocol, 48 test slices): ours / authors' for each model of
``reference-outputs/EvaluateResults/{,previous/}LungInfection-Test-1_result.txt``, plus the standard protocol.
"""

from __future__ import annotations

from infnet.data.semiseg import LUNG_TEST, REFERENCE, find_dataset
from infnet.evaluate import evaluate_folders
from infnet.metrics import PAPER_KEYS
from infnet.metrics.reference import parse_result_txt


def main() -> int:
    root = find_dataset()
    results = root / REFERENCE / "EvaluateResults"
    authors = {
        **parse_result_txt(results / "previous/LungInfection-Test-1_result.txt"),
        **parse_result_txt(results / "LungInfection-Test-1_result.txt"),
    }
    print("| model | " + " | ".join(PAPER_KEYS) + " | std Dice@0.5 | std HD95 (px) |")
    print("|---|" + "---|" * (len(PAPER_KEYS) + 2))
    for model, theirs in authors.items():
        res = evaluate_folders(
            root / REFERENCE / "Results/Lung infection segmentation" / model, root / LUNG_TEST / "GT", "both"
        )
        cells = [f"{res.paper[k]:.3f} / {theirs[k]:.3f}" for k in PAPER_KEYS]
        print(f"| {model} | " + " | ".join(cells) + f" | {res.standard['dice']:.3f} | {res.standard['hd95']:.1f} |")
    print("\ncells: ours / authors' published value")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
