"""End-to-end time, time per stage and peak memory of `infnet segment` on a realistic 300 x 512 x 512 chest CT.

Default volume (``--volume real``): the shared real whole-thorax CT ``ct-samples/chestimagingplatform/ct-64.nrrd``
(COPDGene case, CIP licence; 64 x 64 x 79 voxels of 4.2 x 4.2 x 4.0 mm) upsampled with SimpleITK (linear) to
``--size`` x ``--size`` in-plane and ``--slices`` slices: lungs on most slices (268 of 300), as in a real scan.
``--volume phantom``: the synthetic chest phantom (``infnet.scan.samples.synthetic_chest_ct``, 0.7 x 0.7 x 1 mm),
which has little lung. The volume is written to a NIfTI file first (not timed); a child process then loads the
model, reads the file, builds the lung mask, segments every slice, writes the masks and the report, and reports
its stages and its peak resident memory (ru_maxrss, which includes the Python/NumPy/torch/ORT baseline); the
parent also times the whole child process (interpreter start-up and imports included). Target (issue 18): 300
slices of 512x512 end to end < 25 s on 2 cores.

    .venv/bin/python benchmarks/bench_segment.py                      # real CT, volume default, ONNX Runtime
    .venv/bin/python benchmarks/bench_segment.py --backend torch      # the torch fallback
    .venv/bin/python benchmarks/bench_segment.py --volume phantom --fake --slices 1000   # the memory bound
    .venv/bin/python benchmarks/bench_segment.py --model density-split-multiclass-semiseg  # `segment --multiclass`
    .venv/bin/python benchmarks/bench_segment.py --model density-split-multiclass-semiseg --infection-model NAME
    .venv/bin/python benchmarks/bench_segment.py --arch infnet-effl2    # model cost without trained weights
"""

from __future__ import annotations

import argparse
import json
import os
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


def make_volume(path: Path, slices: int, size: int, kind: str = "real") -> float:
    """Write the test volume (see the module docstring); returns its size in MB (int16)."""
    import SimpleITK as sitk

    if kind == "real":
        from infnet.scan.samples import find_ct_samples

        src = sitk.ReadImage(str(find_ct_samples() / "chestimagingplatform" / "ct-64.nrrd"))
        shape = (size, size, slices)
        spacing = [sp * n / m for sp, n, m in zip(src.GetSpacing(), src.GetSize(), shape, strict=True)]
        img = sitk.Resample(src, shape, sitk.Transform(), sitk.sitkLinear, src.GetOrigin(), spacing,
                            src.GetDirection(), -1024, sitk.sitkInt16)  # fmt: skip
        nbytes = slices * size * size * 2
    else:
        from infnet.scan.samples import synthetic_chest_ct

        hu, spacing = synthetic_chest_ct((slices, size, size), spacing=(0.7, 0.7, 1.0))
        img = sitk.GetImageFromArray(hu)
        img.SetSpacing(spacing)
        nbytes = hu.nbytes
    sitk.WriteImage(img, str(path), True)
    return nbytes / 1e6


def run_child(
    volume: Path,
    outdir: Path,
    model: str | None,
    fake: bool,
    probabilities: bool,
    arch: str | None = None,
    infection_model: str | None = None,
    backend: str = "auto",
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

        predictor = Segmenter(create_model(arch), name=f"{arch}-untrained", device="cpu", backend=backend)
    else:  # a binary model, or a multi-class one with its infection model (GGO / consolidation)
        from infnet.inference import load_predictor
        from infnet.models import weights

        # without --model: what `infnet segment` uses on volumes
        model = model or weights.DEFAULT_VOLUME_MODEL
        predictor = load_predictor(model, infection_model=infection_model, backend=backend)
    load_s = time.perf_counter() - t0
    result = segment_file(predictor, volume, probabilities=probabilities)
    t2 = time.perf_counter()
    write_outputs(result, outdir)
    t3 = time.perf_counter()
    stages = {"model_load": load_s + result.timings.pop("model_load", 0.0), **result.timings}
    return {
        "model": result.model,
        "backend": getattr(predictor, "backend", "n/a"),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "report_s": round(t3 - t2 - result.timings.get("write", 0.0), 2),
        "total_s": round(t3 - t0, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "slices_segmented": sum(1 for r in result.measurements["per_slice"] if r.get("lung_area_mm2", 0) >= 100),
        "lung_ml": result.measurements["lung"]["volume_ml"]["total"],
        "infection_ml": result.measurements["infection"]["volume_ml"]["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", choices=("real", "phantom"), default="real",
                        help="real: the upsampled ChestImagingPlatform CT (default); phantom: synthetic")  # fmt: skip
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--model", help="model name or checkpoint (default: `infnet segment`'s on volumes)")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "onnx-int8"))
    parser.add_argument("--fake", action="store_true", help="threshold stand-in instead of a trained model")
    parser.add_argument("--arch", default=None, help="time an untrained architecture (e.g. infnet-effl2)")
    parser.add_argument("--probabilities", action="store_true", help="also write probability maps")
    parser.add_argument("--infection-model", help="multi-class models: the prior's model (default: its registry's)")
    parser.add_argument("--child", nargs=2, metavar=("VOLUME", "OUTDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stats = run_child(Path(args.child[0]), Path(args.child[1]), args.model, args.fake, args.probabilities,
                          args.arch, args.infection_model, args.backend)  # fmt: skip
        print(json.dumps(stats))
        return
    with tempfile.TemporaryDirectory(prefix="infnet-bench-") as tmp:
        volume = Path(tmp) / f"{args.volume}_ct.nii.gz"
        t = time.perf_counter()
        mb = make_volume(volume, args.slices, args.size, args.volume)
        print(f"{args.volume} volume {args.slices}x{args.size}x{args.size} int16 ({mb:.0f} MB) written in "
              f"{time.perf_counter() - t:.1f} s; load {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")  # fmt: skip
        cmd = [sys.executable, __file__, "--child", str(volume), str(Path(tmp) / "out"), "--backend", args.backend]
        cmd += ["--fake"] if args.fake else (["--model", args.model] if args.model else [])
        cmd += ["--arch", args.arch] if args.arch else []
        cmd += ["--probabilities"] if args.probabilities else []
        cmd += ["--infection-model", args.infection_model] if args.infection_model else []
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        process_s = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "benchmark failed")
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
    stats["process_s"] = round(process_s, 2)
    print(json.dumps(stats, indent=1))
    print(f"end to end: {stats['process_s']:.1f} s for the whole process ({stats['total_s']:.1f} s model load .. "
          f"report), {stats['slices_segmented']} slices segmented, peak RSS {stats['peak_rss_mb']:.0f} MB, "
          f"load average {os.getloadavg()[0]:.1f} after")  # fmt: skip


if __name__ == "__main__":
    main()
