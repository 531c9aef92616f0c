"""`infnet data check PATH`: validate a dataset folder (COVID-SemiSeg root or images/ + masks/)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``data`` subcommand group (``data check``)."""
    p = subparsers.add_parser("data", help="dataset utilities (check)", description="Dataset utilities.")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="validate a dataset folder and print counts per split",
        description=(
            "Validate a COVID-SemiSeg root (each split present) or a folder with images/ (or Imgs/) and "
            "masks/ (or GT/) paired by file stem. Reports unmatched stems, size mismatches, unreadable files "
            "and non-binary masks by name; exits 1 when there are errors. Nothing is modified."
        ),
    )
    check.add_argument("path", metavar="PATH", help="dataset folder")
    check.add_argument(
        "--max-issues", type=int, default=20, metavar="N", help="issues listed per split (0: all; default 20)"
    )
    check.set_defaults(func=run_check)
    p.set_defaults(func=lambda args: _help(p))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Print the report; 0 when the dataset has no errors, 1 otherwise."""
    from infnet.data.check import check_dataset, format_report

    report = check_dataset(args.path)
    print(format_report(report, max_issues=args.max_issues))
    return 0 if report.ok else 1
