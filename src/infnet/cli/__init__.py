"""`infnet` command line: a thin layer, each subcommand calls one public library function.

Every subcommand lives in its own module ``infnet.cli.<name>`` exposing ``register(subparsers)``; the
registered parser sets ``func(args) -> int``. User errors (:class:`InfnetError`) and refused file operations
(``OSError`` naming a file) become one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from infnet import __version__
from infnet.errors import InfnetError

# Order is the order in `infnet --help`.
SUBCOMMANDS = ("segment", "compare", "demo", "predict", "evaluate", "train", "semi", "multiclass", "ensemble", "models",
               "data")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infnet",
        description="COVID-19 lung infection segmentation from CT (Inf-Net).",
    )
    parser.add_argument("--version", action="version", version=f"infnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"infnet.cli.{name}")
        except ModuleNotFoundError as exc:
            # A subcommand whose module is not there yet (or whose optional dependency is missing)
            # must not break the others.
            if exc.name and exc.name.startswith("infnet.cli."):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except InfnetError as exc:
        print(f"infnet: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:
            raise
        # The system refused a file operation (read-only folder, disk full, a file in the way): one line naming it.
        print(f"infnet: error: {exc.filename}: {exc.strerror or exc.__class__.__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("infnet: interrupted", file=sys.stderr)
        return 130
