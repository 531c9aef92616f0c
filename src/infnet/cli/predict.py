"""`infnet predict`: slices in, probability PNGs out (enough to evaluate)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict infection probability PNGs for a folder of slices")
    p.add_argument("--model", default=None, help="bundled model name or checkpoint path (default: bundled)")
    p.add_argument("--input", required=True, help="a PNG/JPG slice or a folder of them")
    p.add_argument("--output", required=True, help="output folder (PNG per input stem, at input size)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from infnet.inference import Segmenter, predict_folder

    seg = Segmenter.from_pretrained(args.model, device=args.device)
    written = predict_folder(seg, args.input, args.output, batch_size=args.batch_size, progress=not args.quiet)
    print(f"wrote {len(written)} probability maps to {args.output} (model {seg.name})")
    return 0
