"""`infnet semi`: Semi-Inf-Net (Algorithm 1 + two-step training) or training from the published pseudo-labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from infnet.cli._common import NONE, add_data_arguments, config_from_args

# Options whose default depends on --paper (None on the parser means "not given").
_BUDGET_KEYS = (
    "k",
    "round_cap",
    "rates",
    "pretrain_epochs",
    "finetune_epochs",
    "finetune_rates",
    "finetune_decay_epoch",
)


def register(sub: argparse._SubParsersAction) -> None:
    from infnet.semi.config import PAPER_SETTING, SemiConfig

    d = SemiConfig()
    p = sub.add_parser(
        "semi",
        help="Semi-Inf-Net: progressive pseudo-labelling, then pre-train on pseudo-labels + fine-tune",
        description=(
            "Paper Algorithm 1 from --init (a model trained on the labeled set), or --from-published to train "
            "on the authors' pseudo-labels. Budgeted CPU defaults: "
            f"K={d.k}, round cap {d.round_cap}, rates {d.rates}, pre-train {d.pretrain_epochs} epoch(s), "
            f"fine-tune {d.finetune_epochs} epochs at rates {d.finetune_rates}, batch {d.finetune_batch_size}. "
            f"--paper: K={PAPER_SETTING['k']} (320 rounds), no cap, "
            "multi-scale, 100 + 100 epochs (about 50 GPU-hours in the paper). Re-run with --resume after a kill."
        ),
    )
    p.add_argument("--out", required=True, help="run directory (manifest, pseudo-labels, rounds, checkpoints)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--init", help="checkpoint of a binary model trained on the labeled set (Algorithm 1)")
    mode.add_argument("--from-published", action="store_true", help="use the published Pseudo-label/GT")
    p.add_argument("--model", help="architecture for --from-published (default infnet-effl2)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its saved settings (finished rounds are skipped)",
    )
    p.add_argument("--paper", action="store_true", help="paper setting instead of the CPU budget")
    add_data_arguments(p, d.train_split, d.val_split)
    p.add_argument("--labeled-images", help="folder of labeled slices (instead of COVID-SemiSeg)")
    p.add_argument("--labeled-masks")
    p.add_argument("--unlabeled", help="folder of unlabeled slices")
    p.add_argument("--published-masks", help="folder of published pseudo-labels (default: Pseudo-label/GT)")
    p.add_argument("--val-images")
    p.add_argument("--val-masks")
    p.add_argument("--k", type=int, help=f"unlabeled slices per round (default {d.k}; paper 5)")
    p.add_argument("--max-rounds", type=int, help="at most this many fine-tuning rounds (default: until empty)")
    p.add_argument("--round-epochs", type=int, default=d.round_epochs)
    p.add_argument("--round-cap", help=f"max training slices per round, or 'none' (default {d.round_cap})")
    p.add_argument("--threshold", type=float, default=d.threshold, help="pseudo-label probability threshold")
    p.add_argument("--pretrain-epochs", type=int)
    p.add_argument("--finetune-epochs", type=int)
    ft_help = dict(
        rates=f"fine-tuning step's scales (default {d.finetune_rates})",
        batch=f"fine-tuning step's batch (default {d.finetune_batch_size})",
        decay="fine-tuning lr decay epoch (default: 3/4 of the epochs; --paper 50)",
    )
    p.add_argument("--finetune-rates", type=float, nargs="+", help=ft_help["rates"])
    p.add_argument("--finetune-batch-size", type=int, default=d.finetune_batch_size, help=ft_help["batch"])
    p.add_argument("--finetune-decay-epoch", type=int, help=ft_help["decay"])
    p.add_argument("--finetune-size", type=int, help="fine-tuning step's input size (default: --train-size)")
    p.add_argument("--encoder-weights", default=d.encoder_weights, help="pre-training init: 'imagenet' or 'none'")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--train-size", type=int, default=d.train_size)
    p.add_argument("--rates", type=float, nargs="+", help="multi-scale rates (default 1.0; paper 0.75 1 1.25)")
    p.add_argument("--augment", action="store_true")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def _budget(args: argparse.Namespace) -> dict:
    from infnet.semi.config import PAPER_SETTING, SemiConfig

    d = SemiConfig()
    out = {}
    for key in _BUDGET_KEYS:
        value = getattr(args, key)
        if value is None:
            value = PAPER_SETTING[key] if args.paper else getattr(d, key)
        out[key] = value
    if isinstance(out["round_cap"], str):
        out["round_cap"] = None if out["round_cap"] in NONE else int(out["round_cap"])
    out["rates"] = list(out["rates"])
    out["finetune_rates"] = list(out["finetune_rates"])
    return out


def run(args: argparse.Namespace) -> int:
    from infnet.errors import InfnetError
    from infnet.semi.algorithm import run_semi
    from infnet.semi.config import SemiConfig

    if args.round_cap is not None and args.round_cap not in NONE and not args.round_cap.isdigit():
        raise InfnetError(f"--round-cap: expected a number or 'none', got '{args.round_cap}'")
    cfg = config_from_args(
        SemiConfig, args, init_checkpoint=args.init, unlabeled_images=args.unlabeled, **_budget(args)
    )
    best = run_semi(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)
    print(f"Semi-Inf-Net checkpoint: {best}")
    return 0
