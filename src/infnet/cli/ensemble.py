"""`infnet ensemble`: combine trained checkpoints of one architecture into one model (mean logits)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="combine trained checkpoints (e.g. seeds of one recipe) into one model averaging their logits",
        description="Write a run folder whose best.safetensors averages the members' logits; use it as --model "
        "anywhere (predict, evaluate, segment, --infection-model). It costs one forward pass per member.",
    )
    p.add_argument("--members", nargs="+", required=True, type=Path, help="member checkpoints (.safetensors)")
    p.add_argument("--out", required=True, type=Path, help="new run folder")
    p.add_argument("--data", type=Path, help="COVID-SemiSeg root for the validation Dice (default: found)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from infnet.training.ensemble_run import write_ensemble_run

    path = write_ensemble_run(args.members, args.out, data=args.data)
    print(f"ensemble of {len(args.members)} written to {path}")
    return 0
