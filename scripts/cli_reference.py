"""Write docs/cli.md, the CLI reference, from the argparse parsers (``python scripts/cli_reference.py``).

Every subcommand (and action of ``infnet multiclass`` / ``infnet data``) gets its usage line, description and a
table of its options with their defaults, as ``infnet <command> --help`` prints them. ``--check`` exits 1 when
the file on disk differs from what the parsers give (``tests/test_cli_reference.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "cli.md"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`".replace("|", "\\|")
    metavar = ""
    if action.nargs != 0:
        name = action.metavar or action.dest.upper()
        metavar = f" {name}" + (" ..." if action.nargs in ("+", "*") else "")
        if action.choices and not action.metavar:
            metavar = " {" + ",".join(map(str, action.choices)) + "}"
    return ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings).replace("|", "\\|")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS) or action.required:
        return ""
    value = action.default
    if isinstance(value, list | tuple):
        value = " ".join(map(str, value))
    return f"`{value}`" if str(value) != "" else ""


def _section(path: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    parser.prog = path  # usage as `infnet segment ...`, whatever argv[0] is
    usage = parser.format_usage().removeprefix("usage: ").strip()
    usage = " ".join(usage.split())
    lines = [f"{'#' * level} `{path}`", ""]
    if parser.description:
        lines += [_cell(parser.description), ""]
    lines += ["```", usage, "```", ""]
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction | argparse._VersionAction):
            continue
        help_text = (action.help or "") % {"default": action.default} if action.help else ""
        rows.append(f"| {_flags(action)} | {_cell(help_text)} | {_default(action)} |")
    if rows:
        lines += ["| option | meaning | default |", "|---|---|---|", *rows, ""]
    for name, sub in _subparsers(parser).items():
        lines += _section(f"{path} {name}", sub, level + 1)
    return lines


def render() -> str:
    """The Markdown of docs/cli.md."""
    import os

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "10000"  # one usage line whatever the terminal (argparse wraps at its width)
    try:
        return _render()
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _render() -> str:
    from infnet.cli import build_parser

    parser = build_parser()
    lines = [
        "# CLI reference",
        "",
        "Generated from the argparse parsers by `.venv/bin/python scripts/cli_reference.py`; do not edit by hand.",
        "Every command also prints this with `--help`. User errors are one line on stderr and exit status 2.",
        "",
    ]
    subs = _subparsers(parser)
    helps = {a.dest: a.help for act in parser._actions if isinstance(act, argparse._SubParsersAction)
             for a in act._choices_actions}  # fmt: skip
    lines += [f"- [`infnet {name}`](#infnet-{name}): {_cell(helps.get(name) or '')}" for name in subs]
    lines.append("")
    for name, sub in subs.items():
        lines += _section(f"infnet {name}", sub, 2)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    text = render()
    if check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
