"""`infnet predict`: slices in, probability PNGs out (enough to evaluate)."""

from __future__ import annotations

import argparse

from infnet.cli._common import (
    add_backend_argument,
    add_infection_model_argument,
    add_model_argument,
    add_tta_arguments,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict infection probability PNGs for a folder of slices",
        description="Binary models write one PNG per input stem; multi-class models write ggo/ and consolidation/.",
    )
    add_model_argument(p)
    add_infection_model_argument(p)
    p.add_argument("--input", required=True, help="a PNG/JPG slice or a folder of them")
    p.add_argument("--output", required=True, help="output folder (PNG per input stem, at input size)")
    p.add_argument(
        "--temperature",
        type=float,
        help="sharpen (>1) or soften (<1) the maps: sigmoid/softmax of T x logits; masks at 0.5 do not change "
        "(default: the model's, see `infnet models`)",
    )
    add_tta_arguments(p)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None)
    add_backend_argument(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad options and an output that would overwrite something, before the model is loaded."""
    from pathlib import Path

    from infnet.errors import InfnetError
    from infnet.io.images import list_images
    from infnet.scan.volume_checks import check_unique_stems

    out, src = Path(args.output), Path(args.input)
    if out.exists() and not out.is_dir():
        raise InfnetError(f"{out}: exists and is not a folder; --output is a folder of probability maps")
    if args.batch_size < 1:
        raise InfnetError(f"--batch-size {args.batch_size}: must be >= 1")
    if src.is_dir():
        check_unique_stems(src, list_images(src))  # maps are named by stem: x.jpg and x.png would collide


def run(args: argparse.Namespace) -> int:
    from infnet.inference import load_predictor, predict_folder

    check_args(args)
    tta = dict(tta=args.tta, tta_scales=args.tta_scales, backend=args.backend)
    seg = load_predictor(
        args.model, infection_model=args.infection_model, device=args.device, temperature=args.temperature, **tta
    )
    written = predict_folder(seg, args.input, args.output, batch_size=args.batch_size, progress=not args.quiet)
    where = args.output if len(seg.classes) == 1 else f"{args.output}/{{{','.join(seg.classes)}}}"
    print(f"wrote {len(written)} probability maps to {where} (model {seg.name}, temperature {seg.temperature:g})")
    return 0
