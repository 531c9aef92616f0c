"""`infnet segment`: one scan, or a cohort from a list file (resumable, split across torchrun ranks)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from infnet.cli._common import (
    add_backend_argument,
    add_infection_model_argument,
    add_model_argument,
    add_tta_arguments,
)
from infnet.errors import InfnetError

__all__ = ["add_backend_argument", "load_predictor", "register", "run", "summary_line"]


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "segment",
        help="segment lung infection in a CT scan (NIfTI, MHA/NRRD, DICOM) or 2D slices",
        description=(
            "Segment COVID-19 lung infection. INPUT: an image (PNG/JPG), a folder of slices, a NIfTI/MHA/NRRD "
            "volume, a DICOM file or a DICOM series folder. Writes masks in the input's geometry, report.json, "
            "report.html and overlays to OUTDIR. Research software, not for clinical diagnosis."
        ),
    )
    p.add_argument("input", nargs="?", metavar="INPUT", help="scan to segment (or use --list)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--list", metavar="FILE", help="text file with one scan per line: process a cohort")
    add_model_argument(p, help="bundled name or checkpoint path (default: infnet-effl2-mixed-ens2-semiseg on "
                       "volumes and for --list, infnet-effl2-semi-robust-ens2-semiseg on 2D slices)")  # fmt: skip
    p.add_argument("--multiclass", action="store_true",
                   help="ground-glass opacity and consolidation: density-split-multiclass-semiseg on volumes and for "
                   "--list, fcn8s-effl2-robust-multiclass-semiseg on 2D slices")  # fmt: skip
    add_infection_model_argument(p)
    p.add_argument("--probabilities", action="store_true", help="also write probability maps (x255, uint8)")
    p.add_argument("--lung-mask", default="auto", choices=("auto", "classical", "lungmask", "intensity", "none"),
                   help="volumes: auto (lungmask package if installed with weights, else classical) | classical "
                        "| lungmask; 2D slices: auto=intensity | none")  # fmt: skip
    p.add_argument("--intensity", default="auto", choices=("auto", "hu", "8bit"),
                   help="voxel values: auto (check they are HU), hu, or 8bit (already windowed grey)")  # fmt: skip
    p.add_argument("--assume-hu", action="store_true", help="same as --intensity hu (skip the CT/HU checks)")
    p.add_argument("--slice-orientation", default="radiological", choices=("radiological", "training", "auto"),
                   help="2D slices: how they are displayed: radiological (default, a PACS export: patient's right on "
                        "the image left, anterior up), training (the COVID-SemiSeg layout) or auto (read from the "
                        "anatomy); decides right/left; a slice whose lungs would lie one above the other is turned "
                        "a quarter, with a note")  # fmt: skip
    p.add_argument("--pixel-spacing", type=float, metavar="MM", help="2D slices: pixel size in mm (areas in mm^2)")
    add_tta_arguments(p, auto=True)
    p.add_argument("--batch-size", type=int, default=8, help="slices per model call (default 8)")
    add_backend_argument(p)
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default 0.5)")
    p.add_argument("--no-overlays", action="store_true", help="do not write overlays/ PNGs")
    seg = p.add_mutually_exclusive_group()
    seg.add_argument(
        "--dicom-seg",
        dest="dicom_seg",
        action="store_true",
        default=None,
        help="write seg.dcm, a DICOM Segmentation (default for DICOM inputs; an error for others)",
    )
    seg.add_argument("--no-dicom-seg", dest="dicom_seg", action="store_false", help="do not write seg.dcm")
    p.add_argument("--lobes", metavar="FILE|FOLDER|lungmask",
                   help="volumes: lobe label map (TotalSegmentator total or its lobe mask folder, lungmask LTRCLobes, "
                        "ChestImagingPlatform, or any with --lobe-labels), or 'lungmask' to run its LTRCLobes model "
                        "(local weights only): adds per-lobe %% involved and the CT severity score")  # fmt: skip
    p.add_argument("--lobe-labels", metavar="SCHEME|MAP",
                   help="labels of --lobes: totalsegmentator | lungmask | cip | RUL=1,RML=2,RLL=3,LUL=4,LLL=5 "
                        "(default: detected from the values)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=run)
    return p


def _predictor(model: str | None, args):
    return load_predictor(model, args.infection_model, tta=args.tta, tta_scales=args.tta_scales, backend=args.backend)


def _model_name(args) -> str | None:
    """``--model``; None: the bundled default for the input (``default_model``)."""
    if getattr(args, "multiclass", False) and args.model:
        raise InfnetError("give either --model or --multiclass")
    return args.model


def default_model(scan, multiclass: bool = False) -> str:
    """The bundled model for an input given without --model: the robust one for 2D slices, else the volume
    default (``--multiclass``: the multi-class ones). ``scan`` None: a cohort (``--list``), taken as volumes."""
    from infnet.models import weights
    from infnet.scan.volume_io import SliceSet

    if isinstance(scan, SliceSet):
        return weights.DEFAULT_2D_MULTICLASS_MODEL if multiclass else weights.DEFAULT_2D_MODEL
    return weights.DEFAULT_MULTICLASS_MODEL if multiclass else weights.DEFAULT_VOLUME_MODEL


def load_predictor(
    model: str | None, infection_model: str | None = None, tta: bool | str = False, tta_scales=None, backend="auto"
):
    """The slice predictor for ``--model`` (``infnet.inference.load_predictor``, imported late: a light CLI)."""
    try:
        from infnet.inference import load_predictor as load
    except ImportError as exc:
        raise InfnetError(f"model inference is not available in this installation ({exc})") from None
    return load(model, infection_model=infection_model, tta=tta, tta_scales=tta_scales, backend=backend)


def _options(args) -> dict:
    if args.batch_size < 1:
        raise InfnetError("--batch-size must be at least 1")
    if not 0.0 < args.threshold < 1.0:
        raise InfnetError("--threshold must be between 0 and 1")
    return {
        "intensity": "hu" if args.assume_hu else args.intensity,
        "lung_mask": args.lung_mask,
        "batch_size": args.batch_size,
        "threshold": args.threshold,
        "probabilities": args.probabilities,
        "slice_orientation": args.slice_orientation,
        "pixel_spacing": args.pixel_spacing,
        **({"lobes": args.lobes, "lobe_labels": args.lobe_labels} if args.lobes else {}),
    }


def run(args) -> int:
    from infnet.scan.outputs import check_output_dir, write_outputs
    from infnet.scan.pipeline import segment_scan
    from infnet.scan.volume_io import read_scan

    if bool(args.input) == bool(args.list):
        raise InfnetError("give either INPUT or --list FILE")
    options = _options(args)
    model = _model_name(args)
    if args.lobe_labels and not args.lobes:
        raise InfnetError("--lobe-labels needs --lobes")
    if args.list:
        if args.lobes:
            raise InfnetError("--lobes applies to one scan (each scan has its own lobe map), not to --list")
        from infnet.scan.cohort import read_list, segment_cohort

        items = read_list(args.list)
        predictor = _predictor(model or default_model(None, args.multiclass), args)
        summary = segment_cohort(predictor, items, args.output, progress=not args.quiet, quiet=args.quiet,
                                 overlays=not args.no_overlays, **options)  # fmt: skip
        if not args.quiet:
            print(f"{args.output}: {summary['done']} done, {summary['skipped']} already done, "
                  f"{len(summary['failed'])} failed (rank {summary['rank']} of {summary['world_size']})")  # fmt: skip
        if summary["failed"]:
            raise InfnetError(f"{len(summary['failed'])} scan(s) failed; see {Path(args.output) / 'manifest.jsonl'}")
        return 0
    source = Path(args.input)
    if not source.exists():
        raise InfnetError(f"{source}: no such file or folder")
    check_output_dir(source, args.output)
    t = time.perf_counter()
    scan = read_scan(source)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    predictor = _predictor(model or default_model(scan, args.multiclass), args)
    load_s = time.perf_counter() - t
    result = segment_scan(predictor, scan, read_s=read_s, progress=not args.quiet, **options)
    # model_load in report.json: building the model here plus its backend (ONNX session) inside the pipeline
    result.timings["model_load"] = load_s + result.timings.get("model_load", 0.0)
    write_outputs(result, args.output, overlays=not args.no_overlays, dicom_seg=args.dicom_seg)
    if not args.quiet:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(summary_line(result, args.output))
    return 0


def summary_line(result, outdir) -> str:
    """One line: where the outputs are and the main numbers."""
    m = result.measurements
    inf = m["infection"]
    if "volume" in m["units"]:
        lung = (m.get("lung") or {}).get("volume_ml", {}).get("total")
        nums = f"lungs {lung:.0f} mL, infection {inf['volume_ml']['total']:.1f} mL"
    else:
        unit = m["units"]["area"]
        nums = f"infection {inf[f'area_{unit}']['total']:.0f} {unit}"
    pct = (inf.get("percent_of_lung") or {}).get("total")
    pct_s = f" ({pct:.1f}% of lung)" if pct is not None else ""
    return f"{outdir}: {nums}{pct_s}, {inf['slices_with_infection']}/{inf['slices']} slices with infection"
