"""`infnet train`: train Inf-Net (or an ablation) with the paper's recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from infnet.cli._common import (
    add_data_arguments,
    add_presentation_arguments,
    add_run_arguments,
    config_from_args,
    epochs_arg,
)
from infnet.training.config import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = sub.add_parser("train", help="train a model (paper defaults: 352, multi-scale, Adam 1e-4, 100 epochs)")
    p.add_argument("--out", required=True, help="run directory (config, metrics.csv, checkpoints)")
    p.add_argument("--model", default=d.model, help="architecture name (see `infnet models`)")
    p.add_argument(
        "--encoder-weights",
        default=d.encoder_weights,
        help="'imagenet' (offline where available), a checkpoint path, or 'none'",
    )
    p.add_argument("--init-checkpoint", help="start from this whole-model checkpoint (fine-tuning)")
    add_data_arguments(p, d.train_split, d.val_split)
    p.add_argument("--train-images", help="folder of training slices (instead of COVID-SemiSeg)")
    p.add_argument("--train-masks", help="folder of training masks, paired by file stem")
    p.add_argument("--train-edges", help="folder of edge maps (default: computed from masks)")
    p.add_argument("--val-images")
    p.add_argument("--val-masks")
    p.add_argument("--test-images", help="held-out slices for a final evaluation (never used for selection)")
    p.add_argument("--test-masks")
    p.add_argument("--epochs", type=int, help=f"default {d.epochs}; with --resume: the run's own, or more to extend it")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--decay-epoch", type=int, default=d.decay_epoch)
    p.add_argument("--clip", type=float, default=d.clip)
    p.add_argument("--train-size", type=int, default=d.train_size)
    p.add_argument("--rates", type=float, nargs="+", default=d.rates, help="multi-scale rates")
    p.add_argument("--augment", action="store_true", help="flips, +-15 degree rotation, intensity jitter")
    add_presentation_arguments(p, d.window_extremes)
    p.add_argument("--negatives", nargs="+", default=[], metavar="SCAN", help="CT volumes (HU) without infection")
    p.add_argument("--negatives-per-epoch", type=int, default=d.negatives_per_epoch, metavar="N")
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    add_run_arguments(p, d.seed, d.device)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from infnet.training.trainer import train

    cfg = config_from_args(TrainConfig, args, epochs=epochs_arg(args, TrainConfig.epochs), amp=not args.no_amp)
    best = train(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)
    print(f"best checkpoint: {best}")
    return 0
