"""`infnet evaluate`: score predicted maps against GT masks (paper and/or standard protocol)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="score predictions against ground-truth masks",
        description=(
            "Pair prediction and GT files by stem and score them. 'paper' reproduces the Inf-Net authors' "
            "MATLAB protocol (meanDic, meanSen, meanSpe, Sm, meanEm, MAE); 'standard' thresholds at p >= 0.5 "
            "(Dice, IoU, sensitivity, specificity, precision, HD95, pooled Dice)."
        ),
    )
    p.add_argument("--pred", required=True, metavar="DIR", help="folder of predicted maps (or one image file)")
    p.add_argument("--gt", required=True, metavar="DIR", help="folder of GT masks (or one image file)")
    p.add_argument("--protocol", choices=("paper", "standard", "both"), default="both", help="default: both")
    p.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    p.add_argument("--csv", metavar="FILE", help="write per-image scores as CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the requested files."""
    from pathlib import Path

    from infnet.errors import InfnetError
    from infnet.evaluate import evaluate_folders, format_table, write_csv, write_json

    if args.json and args.csv and Path(args.json).resolve() == Path(args.csv).resolve():
        raise InfnetError(f"{args.json}: --json and --csv name the same file")
    result = evaluate_folders(args.pred, args.gt, protocol=args.protocol)
    print(format_table(result))
    empty = [im.stem for im in result.images if im.paper is not None and im.paper.empty_gt]
    if empty:
        # The authors' rule scores Dice/Sen/Spe 0 when TP = 0, which is always the case on an empty GT.
        print(
            f"note: {len(empty)} of {result.n_images} GT masks are empty (e.g. {empty[0]}); the paper protocol scores "
            "their Dice, Sen and Spe as 0 whatever the prediction (the authors' rule); see the standard protocol"
        )
    if args.csv:
        print(f"per-image scores: {write_csv(result, args.csv)}", file=sys.stderr)
    if args.json:
        print(f"summary: {write_json(result, args.json)}", file=sys.stderr)
    return 0
