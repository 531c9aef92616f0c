"""`infnet models`: registered architectures and bundled trained weights."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list architectures and bundled trained models")
    p.add_argument("--all", action="store_true", help="include the ablation variants No.1-5")
    p.add_argument("--markdown", action="store_true", help="print the bundled-model table as Markdown")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from infnet.models.catalog import architecture_rows, bundled_table

    if args.markdown:
        print(bundled_table(markdown=True))
        return 0
    print("Architectures (create_model(name); train with `infnet train --model NAME`):")
    print(f"  {'name':<24} {'encoder':<20} {'params (M)':>10} {'input':>6}")
    for row in architecture_rows(include_ablations=args.all):
        print(f"  {row['name']:<24} {row['encoder']:<20} {row['params_m']:>10.2f} {row['input_size']:>6}")
    print("\nBundled trained models (Segmenter.from_pretrained(name); `--model NAME`):")
    print(bundled_table(markdown=False))
    return 0
