"""`infnet train`: train Inf-Net (or an ablation) with the paper's recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    p.add_argument("--data", help="COVID-SemiSeg root (default: found automatically)")
    p.add_argument("--train-split", default=d.train_split, choices=["train", "trainval"])
    p.add_argument("--val-split", default=d.val_split, help="'val' (5 slices) or 'none'")
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
    p.add_argument(
        "--presentation",
        action="store_true",
        help="robust presentation: all 8 flips/rotations, lung windows, full field of view, tighter crops",
    )
    p.add_argument("--window-extremes", type=float, default=d.window_extremes, metavar="P",
                   help="with --presentation: share of random windows at the ends of the level/width ranges")
    p.add_argument("--negatives", nargs="+", default=[], metavar="SCAN", help="CT volumes (HU) without infection")
    p.add_argument("--negatives-per-epoch", type=int, default=d.negatives_per_epoch, metavar="N")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--device", default=d.device)
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def epochs_arg(args: argparse.Namespace, default: int) -> int:
    """--epochs, or ``default``; on --resume without --epochs, 1 so the run's saved count wins (resuming only
    ever extends a run: the trainer keeps max(saved, given))."""
    if args.epochs is not None:
        return args.epochs
    return 1 if args.resume else default


def run(args: argparse.Namespace) -> int:
    from infnet.training.trainer import train

    none = {"none", "None", ""}
    cfg = TrainConfig(
        model=args.model,
        encoder_weights=None if args.encoder_weights in none else args.encoder_weights,
        init_checkpoint=args.init_checkpoint,
        data=args.data,
        train_split=args.train_split,
        val_split=None if args.val_split in none else args.val_split,
        train_images=args.train_images,
        train_masks=args.train_masks,
        train_edges=args.train_edges,
        val_images=args.val_images,
        val_masks=args.val_masks,
        test_images=args.test_images,
        test_masks=args.test_masks,
        epochs=epochs_arg(args, TrainConfig.epochs),
        batch_size=args.batch_size,
        lr=args.lr,
        decay_epoch=args.decay_epoch,
        clip=args.clip,
        train_size=args.train_size,
        rates=list(args.rates),
        augment=args.augment,
        presentation=args.presentation,
        window_extremes=args.window_extremes,
        negatives=list(args.negatives),
        negatives_per_epoch=args.negatives_per_epoch,
        seed=args.seed,
        num_workers=args.num_workers,
        device=args.device,
        amp=not args.no_amp,
    )
    best = train(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)
    print(f"best checkpoint: {best}")
    return 0
