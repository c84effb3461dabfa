"""Evaluation speed on the CPU: `train.evaluate.predict` (on the CPU: channels-last input, batches cut into
pieces of CPU_CHUNK images) against the same model fed whole contiguous batches, for each TTA mode, side by
side in one process.

    .venv/bin/python benchmarks/eval_speed.py --images 2000 --threads 1

A randomly initialised model of the given name (weights do not change the speed); accuracy is not read.
"""

from __future__ import annotations

import argparse
import time

import torch

from filterprior.config import TTA_MODES
from filterprior.models import create_model
from filterprior.train.evaluate import predict


@torch.no_grad()
def seconds(fn, images: torch.Tensor, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        fn(images[i:i + batch])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="airnet")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batches", default="500,100", help="comma-separated evaluation batch sizes")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10).eval()
    images = torch.randn(args.images, 3, 32, 32)
    print(f"{args.model}, {args.images} images, {args.threads} thread(s): seconds (images a second)")
    for batch in (int(b) for b in args.batches.split(",")):
        plain = seconds(model, images, batch)  # the model itself: contiguous batches as given
        print(f"batch {batch:4d}  contiguous, no TTA      {plain:7.2f} s ({args.images / plain:6.0f}/s)")
        for tta in TTA_MODES:
            t = seconds(lambda x: predict(model, x, tta), images, batch)
            ratio = f"  {plain / t:.2f}x the contiguous pass" if tta == "none" else ""
            print(f"batch {batch:4d}  predict, tta={tta:<19} {t:7.2f} s ({args.images / t:6.0f}/s){ratio}", flush=True)

if __name__ == "__main__":
    main()
