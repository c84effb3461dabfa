"""Step time of main's training loop against the sync-free one, and bf16 against fp32, side by side.

    PYTHONPATH=src .venv/bin/python benchmarks/step_time.py [--models simplecnn,airnet] [--batches 32,128]
        [--threads 1] [--steps 20] [--rounds 5]

Each variant trains real steps (forward, loss, backward, SGD, schedule, the step's bookkeeping) on
batches from the tensor-resident loader with the default recipe's crop and flip, on random uint8 images:

- `old`: a copy of main's loop body before issue 14 (one `.item()` per loss, `isfinite(...).all()` read
  back per loss, the accuracy count read back per step) with main's `random_crop` (one `nonzero` per shift);
- `new`: `filterprior.train.engine.train_step` (sums and the finiteness flag on the device, read once at
  the end of the timed steps) with the gather crop;
- `new-bf16`: the same with `amp=bf16`.

Variants alternate within each round so that load from other processes hits them alike; each round
times the mean step of `--steps` steps; the ratios compare the best round of each variant (on a shared
machine the least disturbed one), the median is printed beside it. Prints one JSON line per (model,
batch), after one line timing the per-step bookkeeping alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import filterprior.data.loader as loader_module
from filterprior.config import TrainConfig, apply_overrides
from filterprior.data.loader import AugmentConfig, TensorLoader
from filterprior.data.mixing import BatchMixer, MixConfig
from filterprior.models import create_model
from filterprior.train.allocator import keep_freed_memory
from filterprior.train.engine import train_step
from filterprior.train.meter import EpochMeter
from filterprior.train.optim import build_optimizer, build_scheduler
from filterprior.train.setup import Trainee

NEW_CROP = loader_module.random_crop


def old_random_crop(x: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """main's random_crop before issue 14 (verbatim): one nonzero per shift, i.e. a host wait per shift on a GPU."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = torch.empty((b, c, h, w + 2 * padding), dtype=x.dtype, device=x.device)
    out = torch.empty_like(x)
    for shift in range(2 * padding + 1):
        chosen = (offsets[:, 0] == shift).nonzero().squeeze(1)
        rows.index_copy_(0, chosen, padded.index_select(0, chosen)[:, :, shift : shift + h, :])
    for shift in range(2 * padding + 1):
        chosen = (offsets[:, 1] == shift).nonzero().squeeze(1)
        out.index_copy_(0, chosen, rows.index_select(0, chosen)[:, :, :, shift : shift + w])
    return out


def old_step(cfg, run: Trainee, images, labels, progress, step, sums, counts) -> None:
    """main's loop body before issue 14 (no prior, no EMA: those lines do nothing here)."""
    model = run.model
    images, targets = run.mixer(images, labels)
    logits = model(images)
    losses = {"train_loss": targets.loss(logits, cfg.optim.label_smoothing)}
    for name, value in losses.items():  # _check_finite
        if not torch.isfinite(value).all():
            raise RuntimeError(f"loss {name} became {value.item()} at step {step}")
    total = sum(losses.values())
    run.optimizer.zero_grad(set_to_none=True)
    total.backward()
    run.optimizer.step()
    run.scheduler.step()
    logged = {k: v.item() for k, v in losses.items()}
    for key, value in logged.items():
        sums[key] = sums.get(key, 0.0) + value * len(labels)
    counts[0] += (logits.argmax(1) == targets.dominant()).sum().item()
    counts[1] += len(labels)


def make_run(model_name: str, batch: int, amp: str, steps: int):
    cfg = apply_overrides(TrainConfig(), [f"model.name={model_name}", f"batch_size={batch}", f"amp={amp}"])
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, steps, 10 * steps)
    run = Trainee(model, None, BatchMixer(MixConfig()), None, optimizer, scheduler, steps, 10)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch * 4, 32, 32, 3), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (batch * 4,), generator=gen)
    loader = TensorLoader(images, labels, batch, shuffle=True, augment=AugmentConfig(), mean=(0.5,) * 3,
                          std=(0.25,) * 3, drop_last=True)
    return cfg, run, loader


def batches(loader, n):
    while True:
        for item in loader:
            yield item
            n -= 1
            if n == 0:
                return


def time_variant(variant: str, cfg, run, loader, steps: int) -> float:
    loader_module.random_crop = old_random_crop if variant == "old" else NEW_CROP
    run.model.train()
    sums, counts, meter = {}, [0, 0], EpochMeter(torch.device("cpu"))
    start = time.perf_counter()
    for i, (images, labels) in enumerate(batches(loader, steps)):
        if variant == "old":
            old_step(cfg, run, images, labels, 0.0, i, sums, counts)
        else:
            train_step(cfg, run, images, labels, 0.0, i, meter)
    if variant != "old":
        meter.divergence()
        meter.read()  # the one read an epoch makes
    return (time.perf_counter() - start) / steps


def bookkeeping_us(batch: int, repeats: int = 2000) -> dict[str, float]:
    """The per-step bookkeeping alone (loss and accuracy sums, finiteness), old against new, in µs: the
    part of the step the two loops do differently, apart from the crop, without the model's noise."""
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(batch, 10, generator=gen), torch.randint(0, 10, (batch,), generator=gen)
    losses = {"train_loss": F.cross_entropy(logits, labels)}

    def old():
        sums, correct = {}, 0
        for _ in range(repeats):
            for value in losses.values():
                if not torch.isfinite(value).all():
                    raise RuntimeError
            for k, v in {k: v.item() for k, v in losses.items()}.items():
                sums[k] = sums.get(k, 0.0) + v * batch
            correct += (logits.argmax(1) == labels).sum().item()

    def new():
        meter = EpochMeter(torch.device("cpu"))
        for i in range(repeats):
            meter.add_losses(losses, i, batch)
            meter.add_correct(logits, labels)
        meter.read()

    out = {}
    for name, fn in (("old", old), ("new", new)):
        fn()
        start = time.perf_counter()
        fn()
        out[name] = round(1e6 * (time.perf_counter() - start) / repeats, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="simplecnn,airnet")
    parser.add_argument("--batches", default="32,128")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the engine does on CPU
    print(json.dumps({"bookkeeping_us_per_step": bookkeeping_us(32), "threads": args.threads}), flush=True)
    variants = {"old": "off", "new": "off", "new-bf16": "bf16"}
    for model_name in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            runs = {v: make_run(model_name, batch, amp, args.steps) for v, amp in variants.items()}
            for v, (cfg, run, loader) in runs.items():  # warm-up: allocator, oneDNN kernels
                time_variant(v, cfg, run, loader, 3)
            times: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for v, (cfg, run, loader) in runs.items():
                    times[v].append(time_variant(v, cfg, run, loader, args.steps))
            best = {v: round(1000 * min(t), 2) for v, t in times.items()}
            median = {v: round(1000 * statistics.median(t), 2) for v, t in times.items()}
            print(json.dumps({"model": model_name, "batch": batch, "threads": args.threads,
                              "best_step_ms": best, "median_step_ms": median,
                              "new_vs_old": round(best["new"] / best["old"], 3),
                              "bf16_vs_fp32": round(best["new-bf16"] / best["new"], 3)}), flush=True)
    loader_module.random_crop = NEW_CROP


if __name__ == "__main__":
    main()
