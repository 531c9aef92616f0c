"""Inference backends for the Inf-Net model on this CPU: eager, channels_last, TorchScript, ONNX Runtime.

    .venv/bin/python benchmarks/bench_inference.py [--model infnet-effl2] [--batch 8] [--iters 3]

Prints slices/s at 352x352 for each backend and the largest absolute difference of its logits from eager
fp32 (weights: the bundled model when the name is bundled, else random init; speed does not depend on them).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from infnet.models import create_model


class OutOnly(nn.Module):
    """The prediction logits only (what inference needs), as one tensor for tracing/export."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def timed(fn, iters: int) -> tuple[float, object]:
    out = fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="infnet-effl2")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = OutOnly(create_model(args.model)).eval()
    x = torch.randn(args.batch, 3, 352, 352)
    results = []
    # a copy: converting parameters inside inference_mode would make them unusable for tracing/export
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    xcl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        t, ref = timed(lambda: net(x), args.iters)
        results.append(("eager fp32", t, 0.0))
        t, out = timed(lambda: net_cl(xcl), args.iters)
        results.append(("eager channels_last", t, float((out - ref).abs().max())))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript deprecation and tracer notes
        traced = torch.jit.freeze(torch.jit.trace(net, x[:1]))
        t, out = timed(lambda: traced(x), args.iters)
        results.append(("torchscript frozen", t, float((out - ref).abs().max())))
    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    net,
                    (x[:1],),
                    str(path),
                    input_names=["x"],
                    output_names=["y"],
                    dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                    dynamo=False,
                    opset_version=17,
                )
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            xn = x.numpy()
            t, out = timed(lambda: sess.run(None, {"x": xn})[0], args.iters)
            results.append(("onnxruntime", t, float(np.abs(out - ref.numpy()).max())))
    except ImportError:
        print("onnxruntime not installed: skipped")
    print(f"{args.model}, batch {args.batch}, 352x352, {torch.get_num_threads()} threads")
    print(f"{'backend':<22} {'slices/s':>9} {'s/slice':>8} {'max |diff|':>11}")
    for name, t, diff in results:
        print(f"{name:<22} {args.batch / t:>9.2f} {t / args.batch:>8.3f} {diff:>11.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
