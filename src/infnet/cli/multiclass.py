"""`infnet multiclass train|fit-density|predict|evaluate`: GGO / consolidation guided by an infection prior."""

from __future__ import annotations

import argparse
from pathlib import Path

from infnet.cli._common import (
    add_backend_argument,
    add_data_arguments,
    add_infection_model_argument,
    add_model_argument,
    add_presentation_arguments,
    add_run_arguments,
    add_tta_arguments,
    config_from_args,
    epochs_arg,
)


def register(sub: argparse._SubParsersAction) -> None:
    from infnet.multiclass.config import MultiClassConfig

    d = MultiClassConfig()
    p = sub.add_parser("multiclass", help="multi-class (GGO / consolidation) training and prediction")
    msub = p.add_subparsers(dest="multiclass_command", metavar="ACTION", required=True)

    t = msub.add_parser("train", help="train a multi-class model (image + GT infection prior, cross-entropy)")
    t.add_argument("--out", required=True, help="run directory (config, metrics.csv, checkpoints)")
    t.add_argument("--model", default=d.model, help="a baseline architecture, e.g. fcn8s-effl2, fcn8s-vgg16")
    t.add_argument("--encoder-weights", default=d.encoder_weights, help="'imagenet', a state-dict path, or 'none'")
    t.add_argument("--init-checkpoint", help="start from this whole-model checkpoint (fine-tuning)")
    add_data_arguments(t, d.train_split, d.val_split)
    t.add_argument("--train-images", help="folder of slices (instead of COVID-SemiSeg)")
    t.add_argument("--train-labels", help="folder of class-index masks (0 bg, 1 GGO, 2 consolidation)")
    t.add_argument("--train-priors", help="folder of infection priors (default: label > 0)")
    t.add_argument("--val-images")
    t.add_argument("--val-labels")
    t.add_argument("--val-priors")
    t.add_argument("--epochs", type=int, help=f"default {d.epochs}; with --resume: the run's own, or more to extend it")
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--decay-epoch", type=int, default=d.decay_epoch)
    t.add_argument("--train-size", type=int, default=d.train_size, help="352 or 512 in the paper")
    t.add_argument("--rates", type=float, nargs="+", default=d.rates, help="multi-scale rates")
    t.add_argument("--augment", action="store_true", help="random flips")
    t.add_argument(
        "--rotate", type=float, default=d.rotate, help="with --augment: random rotation within +-DEG (default 0)"
    )
    add_presentation_arguments(t, d.window_extremes)
    t.add_argument("--loss", default=d.loss, choices=["ce", "ce+dice"], help="training loss (default ce)")
    t.add_argument(
        "--gt-prior-rate",
        type=float,
        default=d.gt_prior_rate,
        help="with --train-priors: chance per sample of using the GT infection mask instead (default 0)",
    )
    t.add_argument(
        "--soft-prior",
        action="store_true",
        help="feed the infection probability as the prior instead of its binarisation (training and inference)",
    )
    add_run_arguments(t, d.seed, d.device)
    t.set_defaults(func=run_train)

    f = msub.add_parser(
        "fit-density",
        help="fit a density split: GGO vs consolidation by local attenuation inside the infection map (seconds)",
    )
    f.add_argument("--out", required=True, help="run directory (config, fit.json, best.safetensors)")
    add_data_arguments(f)
    f.add_argument("--train-images", help="folder of slices (instead of COVID-SemiSeg)")
    f.add_argument("--train-labels", help="folder of class-index masks (0 bg, 1 GGO, 2 consolidation)")
    f.add_argument("--val-images")
    f.add_argument("--val-labels")
    f.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0], help="blur scales (pixels)")
    f.add_argument("--openings", type=int, nargs="+", default=[0, 1, 2, 3], help="opening steps to choose from")
    f.add_argument("--samples-per-image", type=int, default=4000, help="infected pixels drawn per slice")
    f.add_argument("--size", type=int, default=0, help="0: each slice at its own size (default); else S x S")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=run_fit_density)

    q = msub.add_parser("predict", help="write ggo/ and consolidation/ probability PNGs for a folder of slices")
    add_model_argument(q, required=True, help="multi-class model: bundled name or checkpoint (.safetensors)")
    add_infection_model_argument(q)
    q.add_argument("--input", required=True, help="a PNG/JPG slice or a folder of them")
    q.add_argument("--output", required=True, help="output folder (ggo/ and consolidation/ PNGs per input stem)")
    q.add_argument("--batch-size", type=int, default=8)
    q.add_argument("--device", default=None)
    add_backend_argument(q)
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=run_predict)

    e = msub.add_parser(
        "evaluate",
        help="score a multi-class model on MultiClassInfection-Test (GGO vs GT-1, consolidation vs GT-2)",
    )
    add_model_argument(e, required=True, help="multi-class model: bundled name or checkpoint (.safetensors)")
    add_infection_model_argument(e)
    e.add_argument("--out", required=True, help="output folder (pred/, metrics.json, per-image CSVs)")
    e.add_argument("--data", help="COVID-SemiSeg root (default: found automatically)")
    e.add_argument("--batch-size", type=int, default=8)
    add_tta_arguments(e, scope=" (both models)")
    e.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from infnet.multiclass.config import MultiClassConfig
    from infnet.multiclass.trainer import train_multiclass

    cfg = config_from_args(MultiClassConfig, args, epochs=epochs_arg(args, MultiClassConfig.epochs))
    best = train_multiclass(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)
    print(f"best checkpoint: {best}")
    return 0


def run_fit_density(args: argparse.Namespace) -> int:
    from infnet.multiclass.density import DensityFitConfig, fit_density_split

    cfg = config_from_args(DensityFitConfig, args)
    path = fit_density_split(cfg, Path(args.out), progress=not args.quiet)
    print(f"density split: {path}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from infnet.inference import predict_folder
    from infnet.multiclass.predict import MultiClassSegmenter

    seg = MultiClassSegmenter.from_pretrained(
        args.model,
        infection_model=args.infection_model,
        device=args.device,
        batch_size=args.batch_size,
        backend=args.backend,
    )
    written = predict_folder(seg, args.input, args.output, batch_size=args.batch_size, progress=not args.quiet)
    print(f"wrote {len(written)} probability maps to {args.output}/{{ggo,consolidation}} (model {seg.name})")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from infnet.metrics import PAPER_KEYS
    from infnet.multiclass.evaluate import evaluate_multiclass

    m = evaluate_multiclass(args.model, args.out, infection_model=args.infection_model, data=args.data,
                            batch_size=args.batch_size, tta=args.tta, tta_scales=args.tta_scales)  # fmt: skip
    print(f"{m['predictor']} on {m['images']}")
    print(f"  {'class':<14}" + "".join(f"{k:>8}" for k in PAPER_KEYS) + f"{'Dice@0.5':>10}")
    for cls in ("ggo", "consolidation"):
        paper, std = m[cls]["paper"], m[cls]["standard"]
        print(f"  {cls:<14}" + "".join(f"{paper[k]:>8.3f}" for k in PAPER_KEYS) + f"{std['dice']:>10.3f}")
    print(f"metrics: {args.out}/metrics.json")
    return 0
