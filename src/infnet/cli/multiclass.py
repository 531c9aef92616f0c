"""`infnet multiclass train|fit-density|predict|evaluate`: GGO / consolidation guided by an infection prior."""

from __future__ import annotations

import argparse
from pathlib import Path

from infnet.cli.segment import add_backend_argument

NONE = {"none", "None", ""}


def register(sub: argparse._SubParsersAction) -> None:
    from infnet.multiclass.config import MultiClassConfig

    d = MultiClassConfig()
    p = sub.add_parser("multiclass", help="multi-class (GGO / consolidation) training and prediction")
    msub = p.add_subparsers(dest="multiclass_command", metavar="ACTION", required=True)

    t = msub.add_parser("train", help="train a multi-class model (image + GT infection prior, cross-entropy)")
    t.add_argument("--out", required=True, help="run directory (config, metrics.csv, checkpoints)")
    t.add_argument("--model", default=d.model, help="a baseline architecture, e.g. fcn8s-effl2, fcn8s-vgg16")
    t.add_argument("--encoder-weights", default=d.encoder_weights, help="'imagenet', a state-dict path, or 'none'")
    t.add_argument("--data", help="COVID-SemiSeg root (default: found automatically)")
    t.add_argument("--train-split", default=d.train_split, choices=["train", "trainval"])
    t.add_argument("--val-split", default=d.val_split, help="'val' (5 slices) or 'none'")
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
    t.add_argument("--loss", default=d.loss, choices=["ce", "ce+dice"], help="training loss (default ce)")
    t.add_argument("--prior-noise", action="store_true", help="perturb the training prior (dilate/erode, cut-outs)")
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
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--device", default=d.device)
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=run_train)

    f = msub.add_parser(
        "fit-density",
        help="fit a density split: GGO vs consolidation by local attenuation inside the infection map (seconds)",
    )
    f.add_argument("--out", required=True, help="run directory (config, fit.json, best.safetensors)")
    f.add_argument("--data", help="COVID-SemiSeg root (default: found automatically)")
    f.add_argument("--train-split", default="train", choices=["train", "trainval"])
    f.add_argument("--val-split", default="val", help="'val' (5 slices) or 'none'")
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
    q.add_argument("--model", required=True, help="multi-class model: bundled name or checkpoint (.safetensors)")
    q.add_argument(
        "--infection-model", default=None, help="binary infection model giving the prior: bundled name or path"
    )
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
    e.add_argument("--model", required=True, help="multi-class model: bundled name or checkpoint (.safetensors)")
    e.add_argument("--infection-model", default=None, help="binary model giving the prior (paper: Semi-Inf-Net)")
    e.add_argument("--out", required=True, help="output folder (pred/, metrics.json, per-image CSVs)")
    e.add_argument("--data", help="COVID-SemiSeg root (default: found automatically)")
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--tta", action="store_true", help="average with the mirrored slice (both models; 2x compute)")
    e.add_argument("--tta-scales", type=float, nargs="+", metavar="S", help="also average over input scales")
    e.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from infnet.cli.train import epochs_arg
    from infnet.multiclass.config import MultiClassConfig
    from infnet.multiclass.trainer import train_multiclass

    cfg = MultiClassConfig(
        model=args.model,
        encoder_weights=None if args.encoder_weights in NONE else args.encoder_weights,
        data=args.data,
        train_split=args.train_split,
        val_split=None if args.val_split in NONE else args.val_split,
        train_images=args.train_images,
        train_labels=args.train_labels,
        train_priors=args.train_priors,
        val_images=args.val_images,
        val_labels=args.val_labels,
        val_priors=args.val_priors,
        epochs=epochs_arg(args, MultiClassConfig.epochs),
        batch_size=args.batch_size,
        lr=args.lr,
        decay_epoch=args.decay_epoch,
        train_size=args.train_size,
        rates=list(args.rates),
        augment=args.augment,
        rotate=args.rotate,
        prior_noise=args.prior_noise,
        gt_prior_rate=args.gt_prior_rate,
        soft_prior=args.soft_prior,
        loss=args.loss,
        seed=args.seed,
        device=args.device,
    )
    best = train_multiclass(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)
    print(f"best checkpoint: {best}")
    return 0


def run_fit_density(args: argparse.Namespace) -> int:
    from infnet.multiclass.density import DensityFitConfig, fit_density_split

    cfg = DensityFitConfig(
        data=args.data,
        train_split=args.train_split,
        val_split=None if args.val_split in NONE else args.val_split,
        train_images=args.train_images,
        train_labels=args.train_labels,
        val_images=args.val_images,
        val_labels=args.val_labels,
        sigmas=list(args.sigmas),
        openings=list(args.openings),
        samples_per_image=args.samples_per_image,
        size=args.size,
        seed=args.seed,
    )
    path = fit_density_split(cfg, Path(args.out), progress=not args.quiet)
    print(f"density split: {path}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from infnet.inference import predict_folder
    from infnet.multiclass.predict import MultiClassSegmenter

    seg = MultiClassSegmenter.from_pretrained(
        args.model, infection_model=args.infection_model, device=args.device, batch_size=args.batch_size,
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
