"""`infnet demo`: the bundled default model on the bundled samples (a small chest CT volume and 3 slices)."""

from __future__ import annotations

import argparse
from pathlib import Path

from infnet.cli._common import add_backend_argument, add_model_argument


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="run the bundled model on the bundled sample CT and slices",
        description=(
            "Segment the bundled samples (a small chest CT crop, Apache-2.0, and three COVID-SemiSeg test slices, "
            "non-commercial licence) with the bundled models (as `infnet segment`: the default on the volume, the "
            "robust model on the slices) and write masks and reports. "
            "Research software, not for clinical diagnosis."
        ),
    )
    p.add_argument(
        "-o", "--output", default="infnet-demo", metavar="OUTDIR", help="output folder (default ./infnet-demo)"
    )
    add_model_argument(p, help="bundled name or checkpoint path (default: as `infnet segment`)")
    add_backend_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from infnet.cli.segment import default_model, load_predictor, summary_line
    from infnet.scan.outputs import write_outputs
    from infnet.scan.pipeline import segment_scan
    from infnet.scan.samples import bundled_samples
    from infnet.scan.volume_io import read_scan

    samples = bundled_samples()
    out = Path(args.output)
    runs = [(samples / "chest_ct_crop.nii.gz", out / "chest_ct"), (samples / "slices", out / "slices")]
    predictors: dict[str, object] = {}  # one load per model (both inputs share it with --model)
    for source, dest in runs:
        scan = read_scan(source)
        # as `infnet segment`: without --model, the default for volumes and the robust model for 2D slices
        name = args.model or default_model(scan)
        if name not in predictors:
            predictors[name] = load_predictor(name, tta="auto", backend=args.backend)
        predictor = predictors[name]
        # The bundled slices are in the COVID-SemiSeg layout (ignored for the volume).
        result = segment_scan(predictor, scan, progress=not args.quiet, slice_orientation="training")
        write_outputs(result, dest)
        print(summary_line(result, dest))
    print(
        f"demo outputs: {out.resolve()} (open {out / 'chest_ct' / 'report.html'} and {out / 'slices' / 'report.html'})"
    )
    return 0
