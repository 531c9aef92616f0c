"""Training and inference throughput of the Inf-Net encoders, side by side in one run on this machine.

    .venv/bin/python benchmarks/bench_models.py [--models infnet-effl2 infnet-res2net50] [--batch 4] [--iters 3]
        [--channels-last]   # NHWC model and inputs, as the trainers and Segmenter use by default

Training: images/s for forward + backward + Adam step at 352x352 (batch --batch, paper loss), i.e. one
scale of the multi-scale schedule. Inference: slices/s at 352x352 under torch.inference_mode (batch 8).
Each figure is the median over --iters timed repetitions after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from infnet.models import create_model
from infnet.training.losses import infnet_loss


def _time(fn, iters: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(name: str, batch: int, iters: int, size: int = 352, channels_last: bool = False) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(name).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    mask = (torch.rand(batch, 1, size, size) > 0.7).float()

    def train_step():
        model.train()
        opt.zero_grad()
        loss = infnet_loss(model(x), mask, mask)
        loss.backward()
        opt.step()

    xi = torch.randn(8, 3, size, size).contiguous(memory_format=fmt)

    def infer():
        model.eval()
        with torch.inference_mode():
            model(xi)

    t_train = _time(train_step, iters)
    t_infer = _time(infer, iters)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return dict(
        model=name,
        params_m=params,
        train_img_s=batch / t_train,
        s_per_train_img=t_train / batch,
        infer_slices_s=8 / t_infer,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["infnet-effl2", "infnet-res2net50"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--channels-last", action="store_true", help="NHWC model and inputs")
    args = ap.parse_args(argv)
    layout = "channels_last" if args.channels_last else "NCHW"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input 352x352, {layout}")
    print(f"{'model':<20} {'params (M)':>10} {'train img/s':>12} {'s/train img':>12} {'infer slices/s':>15}")
    for name in args.models:
        r = bench(name, args.batch, args.iters, channels_last=args.channels_last)
        print(
            f"{r['model']:<20} {r['params_m']:>10.2f} {r['train_img_s']:>12.2f} {r['s_per_train_img']:>12.3f} "
            f"{r['infer_slices_s']:>15.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
