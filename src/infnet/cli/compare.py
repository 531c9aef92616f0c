"""`infnet compare`: a follow-up scan against its baseline (scans or `infnet segment` output folders)."""

from __future__ import annotations

import argparse

from infnet.cli._common import add_model_argument
from infnet.errors import InfnetError


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare",
        help="compare a follow-up scan with its baseline (volumes, % involved, zones, lobes, severity score)",
        description=(
            "Compare FOLLOWUP with BASELINE; each is a CT scan (segmented here) or an `infnet segment` output "
            "folder (its report.json and masks; lobes only this way). Writes OUTDIR/compare.json (changes under "
            "keys containing 'change'), compare.html with matched slices side by side, compare_slices.png. "
            "Research software, not for clinical diagnosis."
        ),
    )
    p.add_argument("baseline", metavar="BASELINE", help="baseline scan or segment output folder")
    p.add_argument("followup", metavar="FOLLOWUP", help="follow-up scan or segment output folder")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    add_model_argument(p, help="model for sides that are scans (default: the bundled default)")
    p.add_argument("--lung-mask", default="auto", choices=("auto", "classical", "lungmask"),
                   help="lung mask for sides that are scans")  # fmt: skip
    p.add_argument("--assume-hu", action="store_true", help="skip the CT/HU checks for sides that are scans")
    p.add_argument("--allow-different-patients", action="store_true",
                   help="compare even when the two DICOM scans have different PatientIDs (with a warning)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from infnet.cli.segment import load_predictor
    from infnet.scan.compare import compare_scans

    if args.output in (args.baseline, args.followup):
        raise InfnetError(f"{args.output}: output folder is an input")
    options = {"lung_mask": args.lung_mask, "intensity": "hu" if args.assume_hu else "auto"}
    data = compare_scans(args.baseline, args.followup, args.output, predictor=lambda: load_predictor(args.model),
                         allow_different_patients=args.allow_different_patients, **options)  # fmt: skip
    if not args.quiet:
        total = data["changes"]["lungs"]["total"]
        inf, pct = total["infected_volume_ml"], total["percent_involved"]
        sev = data["changes"].get("severity_score_change")
        print(f"{args.output}: infected volume {inf['baseline']:.1f} -> {inf['followup']:.1f} mL "
              f"(change {inf['change']:+.1f} mL), % involved change {pct['change'] or 0:+.2f}"
              + (f", severity score change {sev:+d}" if sev is not None else ""))  # fmt: skip
    return 0
