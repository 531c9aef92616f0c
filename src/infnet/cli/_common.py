"""Arguments and helpers shared by the CLI subcommands (one definition of each repeated option)."""

from __future__ import annotations

import argparse
import dataclasses

NONE = {"none", "None", ""}


def add_model_argument(parser: argparse.ArgumentParser, required: bool = False, help: str | None = None) -> None:
    """``--model NAME|PATH``: a bundled model name or a checkpoint path."""
    default = "bundled name or checkpoint path" + ("" if required else " (default: the bundled default)")
    parser.add_argument("--model", metavar="NAME|PATH", required=required, default=None, help=help or default)


def add_presentation_arguments(parser: argparse.ArgumentParser, window_extremes: float) -> None:
    """``--presentation`` and ``--window-extremes``: the robust training recipe (binary and multi-class)."""
    parser.add_argument("--presentation", action="store_true",
                        help="robust presentation: all 8 flips/rotations, lung windows, full field of view, tighter "
                        "crops (validation: mean over 5 fixed views)")  # fmt: skip
    parser.add_argument("--window-extremes", type=float, default=window_extremes, metavar="P",
                        help="with --presentation: share of random windows at the ends of the level/width "
                        "ranges")  # fmt: skip


def add_infection_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--infection-model``: the binary model giving a multi-class model its prior."""
    parser.add_argument("--infection-model", metavar="NAME|PATH", default=None,
                        help="multi-class models: the binary model giving the infection prior "
                             "(default: the one named in the model's registry entry)")  # fmt: skip


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend auto|torch|onnx|onnx-int8`` (:mod:`infnet.backends`), shared by the inference subcommands."""
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "onnx-int8"),
                        help="inference backend: auto (ONNX Runtime when installed, else torch; default), torch, "
                             "onnx, or onnx-int8 (binary networks' decoder in int8: about 1.3x faster, Dice@0.5 "
                             "within 0.001 on the test slices; multi-class networks stay fp32)")  # fmt: skip


def add_tta_arguments(parser: argparse.ArgumentParser, scope: str = "", auto: bool = False) -> None:
    """``--tta [mirror|dihedral]`` and ``--tta-scales S ...`` (the training scales), ``scope`` added to the help;
    ``auto``: also the choice 'auto' (the default: dihedral on 2D slices, none on volumes)."""
    choices = ("auto", "none", "mirror", "dihedral") if auto else ("none", "mirror", "dihedral")
    default = "auto (dihedral on 2D slices, none on volumes)" if auto else "none"
    parser.add_argument("--tta", nargs="?", const="mirror", default=choices[0], choices=choices,
                        help=f"test-time augmentation{scope}: mirror (--tta alone; average with the mirrored slice, "
                             "2x compute) or dihedral (all 8 flips/rotations, 8x: the same answer in any "
                             f"orientation); default {default}")  # fmt: skip
    scales = "also average over input scales, e.g. 0.75 1 1.25 (the training scales; N x compute)"
    parser.add_argument("--tta-scales", type=float, nargs="+", metavar="S", help=scales)


def add_data_arguments(parser: argparse.ArgumentParser, train_split: str = "train", val_split: str = "val") -> None:
    """``--data``, ``--train-split``, ``--val-split``: where the COVID-SemiSeg splits come from."""
    parser.add_argument("--data", help="COVID-SemiSeg root (default: found automatically)")
    parser.add_argument("--train-split", default=train_split, choices=["train", "trainval"])
    parser.add_argument("--val-split", default=val_split, help="'val' (5 slices) or 'none'")


def add_run_arguments(parser: argparse.ArgumentParser, seed: int = 0, device: str | None = None) -> None:
    """``--seed``, ``--device``, ``--resume`` and ``--quiet`` of the training subcommands."""
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--device", default=device)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    parser.add_argument("--quiet", action="store_true")


def epochs_arg(args: argparse.Namespace, default: int) -> int:
    """--epochs, or ``default``; on --resume without --epochs, 1 so the run's saved count wins (resuming only
    ever extends a run: the trainer keeps max(saved, given))."""
    if args.epochs is not None:
        return args.epochs
    return 1 if args.resume else default


def none_if_none(value):
    """``None`` for the spellings of 'none' (``--val-split none``, ``--encoder-weights none``), else ``value``."""
    return None if value in NONE else value


def config_from_args(cls, args: argparse.Namespace, **given):
    """A config dataclass from parsed arguments: each field from ``given``, else the argument of the same name
    (fields without an argument keep their defaults). ``encoder_weights`` and ``val_split`` read 'none' as None,
    lists come as lists."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            values[f.name] = given[f.name]
        elif hasattr(args, f.name):
            value = getattr(args, f.name)
            if f.name in ("encoder_weights", "val_split"):
                value = none_if_none(value)
            values[f.name] = list(value) if isinstance(value, tuple | list) else value
    return cls(**values)
