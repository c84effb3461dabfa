"""Training throughput of every registered model, against this machine's sgemm peak, in one process.

    .venv/bin/python benchmarks/throughput.py [--threads N] [--batch 128 | --batch 16,32,128] [--seconds 6]
        [--malloc keep | --malloc default,keep]

For each model: images/s of full training steps (forward, backward, SGD step) on random 32x32 batches,
and GFLOP/s = 3 x forward FLOPs per image x images/s (backward costs about twice the forward). The
sgemm peak is the best of several float32 GEMMs (see sgemm_gflops) with the same thread count, measured right
before each model so that load from other processes affects both alike; the ratio is what to compare.
`--malloc default,keep` times every model first with glibc's malloc as it comes, then with the training
engine's setting (filterprior.train.allocator: freed memory kept, not unmapped); the order is fixed
because the setting cannot be undone inside a process.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from filterprior.models import create_model, flops_per_image, list_models
from filterprior.train.allocator import keep_freed_memory


def _best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def sgemm_gflops(repeats: int = 5) -> float:
    """Best float32 GEMM rate over MKL's torch.mm and oneDNN's 1x1 convolution (also a GEMM).

    On AMD EPYC, MKL's sgemm takes a slower code path than oneDNN's JIT kernels that run the
    convolutions, so MKL alone would understate the peak the models can reach; we take the best.
    """
    rates = []
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        rates.append(2 * n**3 / _best_seconds(lambda: torch.mm(a, b), repeats) / 1e9)
    for batch, channels, side in ((16, 1024, 16), (32, 512, 16)):
        x, w = torch.randn(batch, channels, side, side), torch.randn(channels, channels, 1, 1)
        for fmt in (torch.contiguous_format, torch.channels_last):
            xf = x.to(memory_format=fmt)
            seconds = _best_seconds(lambda: F.conv2d(xf, w), repeats)
            rates.append(2 * batch * channels**2 * side**2 / seconds / 1e9)
    return max(rates)


def train_images_per_second(name: str, batch: int, seconds: float, channels_last: bool = False) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name, num_classes=10).to(memory_format=fmt)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt), torch.randint(0, 10, (batch,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up: allocator, oneDNN primitive caches
        step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", default="128", help="batch size, or comma-separated sizes to compare")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--models", default=",".join(list_models()))
    parser.add_argument("--malloc", default="keep", choices=["keep", "default", "default,keep"],
                        help="glibc malloc as training sets it (keep), as it comes (default), or both in turn")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    batches = [int(b) for b in args.batch.split(",")]
    print(f"torch {torch.__version__}, {args.threads} threads")
    print(f"{'model':<15} {'batch':>5} {'format':<6} {'malloc':<7} {'img/s':>8} {'GFLOP/s':>8} {'sgemm':>7} {'ratio':>6}")
    for malloc in args.malloc.split(","):
        if malloc == "keep" and not keep_freed_memory():
            print("note: this is not glibc (or FILTERPRIOR_MALLOC=default): malloc left as it is")
        for name in args.models.split(","):
            for batch in batches:
                for channels_last in (False, True):  # NCHW and NHWC side by side
                    peak = sgemm_gflops()
                    rate = train_images_per_second(name, batch, args.seconds, channels_last)
                    gflops = 3 * flops_per_image(create_model(name)) * rate / 1e9
                    peak = max(peak, sgemm_gflops())  # before and after: the better of the two
                    fmt = "NHWC" if channels_last else "NCHW"
                    rows.append({"model": name, "batch": batch, "format": fmt, "malloc": malloc, "images_per_s": rate,
                                 "gflops": gflops, "sgemm_gflops": peak, "ratio": gflops / peak})
                    print(f"{name:<15} {batch:5d} {fmt:<6} {malloc:<7} {rate:8.0f} {gflops:8.1f} {peak:7.1f} "
                          f"{gflops / peak:6.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
