"""End-to-end time and peak memory of `segment_file` + `write_outputs` on a synthetic CT volume.

A synthetic chest phantom (``infnet.scan.samples.synthetic_chest_ct``, int16 HU, 0.7 x 0.7 x 1 mm) is written
to a NIfTI file first (not timed); a child process then reads it, builds the lung mask, segments every slice,
writes the masks and the report, and reports its own peak resident memory (ru_maxrss, which includes the
Python/NumPy/torch baseline). Goal: < 60 s for 300 slices of 512x512 on a laptop-class CPU, and memory that
stays bounded (< 4 GB for 1000 slices).

    .venv/bin/python benchmarks/bench_segment.py --fake                 # before trained weights exist
    .venv/bin/python benchmarks/bench_segment.py --model infnet-effl2-semiseg
    .venv/bin/python benchmarks/bench_segment.py --model density-split-multiclass-semiseg  # `segment --multiclass`
    .venv/bin/python benchmarks/bench_segment.py --model density-split-multiclass-semiseg --infection-model NAME
    .venv/bin/python benchmarks/bench_segment.py --fake --slices 1000   # the memory bound
    .venv/bin/python benchmarks/bench_segment.py --arch infnet-effl2    # model cost without trained weights
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class ThresholdPredictor:
    """Stand-in model: 'infection' where the grey level is ground-glass-like (about -640..-170 HU)."""

    name = "fake-threshold"
    classes = ("infection",)

    def predict_proba(self, slices: np.ndarray) -> np.ndarray:
        return ((slices >= 90) & (slices <= 175)).astype(np.float32)[:, None]


def make_volume(path: Path, slices: int, size: int) -> float:
    """Write the phantom; returns its size in MB (int16)."""
    import SimpleITK as sitk

    from infnet.scan.samples import synthetic_chest_ct

    hu, spacing = synthetic_chest_ct((slices, size, size), spacing=(0.7, 0.7, 1.0))
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path), True)
    return hu.nbytes / 1e6


def run_child(
    volume: Path,
    outdir: Path,
    model: str | None,
    fake: bool,
    probabilities: bool,
    arch: str | None = None,
    infection_model: str | None = None,
) -> dict:
    """The timed part (in its own process, so the peak memory is the pipeline's)."""
    from infnet.scan.outputs import write_outputs
    from infnet.scan.pipeline import segment_file

    t0 = time.perf_counter()
    if fake:
        predictor = ThresholdPredictor()
    elif arch:  # untrained network of the same architecture: the right cost, meaningless masks
        from infnet.inference import Segmenter
        from infnet.models.registry import create_model

        predictor = Segmenter(create_model(arch), name=f"{arch}-untrained", device="cpu")
    else:  # a binary model, or a multi-class one with its infection model (GGO / consolidation)
        from infnet.inference import load_predictor

        predictor = load_predictor(model, infection_model=infection_model)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = segment_file(predictor, volume, probabilities=probabilities)
    t2 = time.perf_counter()
    write_outputs(result, outdir)
    t3 = time.perf_counter()
    return {
        "model": result.model,
        "model_load_s": round(load_s, 2),
        "stages_s": {k: round(v, 2) for k, v in result.timings.items()},
        "write_and_report_s": round(t3 - t2, 2),
        "total_s": round(t3 - t1, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "lung_ml": result.measurements["lung"]["volume_ml"]["total"],
        "infection_ml": result.measurements["infection"]["volume_ml"]["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--model", default=None, help="model name or checkpoint (default: bundled)")
    parser.add_argument("--fake", action="store_true", help="threshold stand-in instead of a trained model")
    parser.add_argument("--arch", default=None, help="time an untrained architecture (e.g. infnet-effl2)")
    parser.add_argument("--probabilities", action="store_true", help="also write probability maps")
    parser.add_argument("--infection-model", help="multi-class models: the prior's model (default: its registry's)")
    parser.add_argument("--child", nargs=2, metavar=("VOLUME", "OUTDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stats = run_child(
            Path(args.child[0]),
            Path(args.child[1]),
            args.model,
            args.fake,
            args.probabilities,
            args.arch,
            args.infection_model,
        )
        print(json.dumps(stats))
        return
    with tempfile.TemporaryDirectory(prefix="infnet-bench-") as tmp:
        volume = Path(tmp) / "synthetic_ct.nii.gz"
        t = time.perf_counter()
        mb = make_volume(volume, args.slices, args.size)
        print(f"synthetic volume {args.slices}x{args.size}x{args.size} int16 ({mb:.0f} MB) written in "
              f"{time.perf_counter() - t:.1f} s")  # fmt: skip
        cmd = [sys.executable, __file__, "--child", str(volume), str(Path(tmp) / "out")]
        cmd += ["--fake"] if args.fake else (["--model", args.model] if args.model else [])
        cmd += ["--arch", args.arch] if args.arch else []
        cmd += ["--probabilities"] if args.probabilities else []
        cmd += ["--infection-model", args.infection_model] if args.infection_model else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "benchmark failed")
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(stats, indent=1))
    print(f"end-to-end (read .. report): {stats['total_s']:.1f} s, peak RSS {stats['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
