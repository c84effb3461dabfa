"""Time of the augmentation of one batch against one training step, on one thread by default.

    PYTHONPATH=src .venv/bin/python benchmarks/augment_speed.py [--threads 1] [--batch 128] [--repeats 20]
        [--model airnet] [--json out.json]

Rows, each a median over `--repeats` batches (loader rows: over epochs of 10 batches, per batch) of 32x32 images (smooth random images; the
cost does not depend on the content), on the CPU:
- the loader's crop + flip (the default recipe) and each strong policy of filterprior.data.augment on
  top of it, as TensorLoader yields batches (including normalisation);
- mixup and CutMix (filterprior.data.mixing) on a ready batch;
- kornia's own policy modules (kornia.augmentation.auto) on the same batch, for comparison only: they
  choose one sub-policy per batch, which is why filterprior draws per image (see data/augment.py);
- one training step of `--model` (forward, backward, SGD step) at the same batch size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from filterprior.data import AugmentConfig, TensorLoader
from filterprior.data.mixing import BatchMixer, MixConfig
from filterprior.models import create_model
from filterprior.train.allocator import keep_freed_memory


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _images(count: int, seed: int = 0) -> np.ndarray:
    """Smooth colour images (8x8 noise upsampled to 32x32)."""
    small = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (count, 3, 8, 8), dtype=np.uint8))
    big = F.interpolate(small.float(), size=(32, 32), mode="bilinear", align_corners=False)
    return big.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def loader_batch_ms(policy: str, batch: int, repeats: int, batches: int = 10) -> float:
    """A batch from TensorLoader with crop 4 + flip (+ the policy): an epoch of `batches` batches, the
    epoch's draws included, divided by `batches`."""
    images = _images(batch * batches)
    loader = TensorLoader(images, np.zeros(len(images), dtype=np.int64), batch, shuffle=True,
                          augment=AugmentConfig(crop_padding=4, flip=True, policy=policy),
                          mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return _median_ms(lambda: sum(1 for _ in loader), max(3, repeats // batches)) / batches


def mixing_ms(kind: str, batch: int, repeats: int) -> float:
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    mixer = BatchMixer(MixConfig(**{kind: 1.0}), seed=0)
    return _median_ms(lambda: mixer(x, y), repeats)


def kornia_policy_ms(name: str, batch: int, repeats: int) -> float:
    from kornia.augmentation.auto import AutoAugment, RandAugment, TrivialAugment

    module = {"autoaugment": lambda: AutoAugment("cifar10"), "randaugment": lambda: RandAugment(n=2, m=9),
              "trivialaugment": TrivialAugment}[name]()
    x = torch.from_numpy(_images(batch)).permute(0, 3, 1, 2).float() / 255
    return _median_ms(lambda: module(x), repeats)


def train_step_ms(model_name: str, batch: int, repeats: int) -> float:
    model = create_model(model_name, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return _median_ms(step, max(3, repeats // 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model", default="airnet", help="the model whose training step is the yardstick")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the training engine does on CPU
    torch.manual_seed(0)
    rows: dict[str, float] = {}
    for policy in ("none", "autoaugment", "randaugment", "trivialaugment"):
        label = "crop+flip" if policy == "none" else f"crop+flip+{policy}"
        rows[f"loader {label}"] = loader_batch_ms(policy, args.batch, args.repeats)
    for kind in ("mixup", "cutmix"):
        rows[f"{kind}"] = mixing_ms(kind, args.batch, args.repeats)
    for name in ("autoaugment", "randaugment", "trivialaugment"):
        rows[f"kornia.augmentation.auto {name} (one sub-policy per batch)"] = kornia_policy_ms(name, args.batch, args.repeats)
    step = train_step_ms(args.model, args.batch, args.repeats)
    rows[f"{args.model} training step"] = step
    print(f"batch {args.batch} of 32x32 images, {args.threads} thread(s), median of {args.repeats} batches")
    for label, ms in rows.items():
        print(f"  {label:<66} {ms:9.1f} ms  {100 * ms / step:6.2f} % of a step")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"batch": args.batch, "threads": args.threads, "ms": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
