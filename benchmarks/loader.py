"""The tensor-resident loader against the classic pipeline, side by side in one process, on simplecnn.

    FILTERPRIOR_DATA=../shared/data .venv/bin/python benchmarks/loader.py [--full-steps 150] [--small-epochs 40]

Classic pipeline, as most scripts and the seed projects use it: a Dataset returning one image, per-sample
transforms (pad-4 random crop, flip, to float, normalise) and torch's DataLoader with 2 workers, not
persistent. Tensor loader: filterprior.data.TensorLoader (the whole set as one uint8 tensor, batched
augmentation). Compute-only: the same training steps on one real, normalised batch already in memory (the upper bound).

Regimes: full CIFAR-10 training data at batch 100, and small data (100 images, batch 16, many epochs).
Each number is images/s of complete training steps (forward, backward, SGD step).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from filterprior.data import AugmentConfig, TensorLoader, channel_stats, load_data, make_split
from filterprior.models import create_model


class ClassicDataset(Dataset):
    """One image at a time with per-sample numpy transforms (what torchvision's transforms do)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, seed: int = 0):
        self.images, self.labels = images, labels
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = np.pad(self.images[index], ((4, 4), (4, 4), (0, 0)))
        top, left = np.random.randint(0, 9, size=2)
        image = image[top : top + 32, left : left + 32]
        if np.random.rand() < 0.5:
            image = image[:, ::-1]
        chw = image.transpose(2, 0, 1).astype(np.float32) / 255.0
        return torch.from_numpy((chw - self.mean) / self.std), int(self.labels[index])


def make_step(seed: int = 0):
    torch.manual_seed(seed)
    model = create_model("simplecnn", num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def rate_compute_only(images, labels, mean, std, batch: int, steps: int) -> float:
    """The same steps on one real, normalised batch already in memory (random inputs ran slower)."""
    step = make_step()
    loader = TensorLoader(images[:batch], labels[:batch], batch, shuffle=False, augment=None, mean=mean, std=std)
    x, y = next(iter(loader))
    step(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return steps * batch / (time.perf_counter() - start)


def timed_training(batches_of_epoch, epochs: int, max_steps: int | None) -> float:
    """Images/s of training steps over `epochs` passes of `batches_of_epoch(epoch)`.

    The clock starts after the first step, as in the compute-only reference (which warms up with one
    untimed step): the first step builds oneDNN's kernels, which is not the loader's cost.
    """
    step = make_step()
    seen, start = 0, None
    for epoch in range(epochs):
        for i, (x, y) in enumerate(batches_of_epoch(epoch)):
            step(x, y)
            if start is None:
                start = time.perf_counter()
            else:
                seen += len(y)
            if max_steps is not None and i + 1 >= max_steps:
                break
    return seen / (time.perf_counter() - start)


def rate_classic(images, labels, mean, std, batch: int, epochs: int, max_steps: int | None) -> float:
    loader = DataLoader(ClassicDataset(images, labels, mean, std), batch_size=batch, shuffle=True, num_workers=2,
                        persistent_workers=False, drop_last=True)
    return timed_training(lambda _epoch: loader, epochs, max_steps)


def rate_tensor(images, labels, mean, std, batch: int, epochs: int, max_steps: int | None) -> float:
    loader = TensorLoader(images, labels, batch, shuffle=True, augment=AugmentConfig(crop_padding=4, flip=True),
                          mean=mean, std=std, drop_last=True)

    def batches(epoch: int):
        loader.set_epoch(epoch)
        return loader

    return timed_training(batches, epochs, max_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-steps", type=int, default=150, help="steps measured in the full-data regime")
    parser.add_argument("--small-epochs", type=int, default=40, help="epochs in the small-data regime")
    parser.add_argument("--repeats", type=int, default=2, help="alternate the pipelines this many times")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for every pipeline alike")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_data("cifar10")
    split = make_split(data.train_labels, None, 0, 500)
    images, labels = data.train_images[split.train_idx], data.train_labels[split.train_idx]
    mean, std = channel_stats(images)
    small = make_split(data.train_labels, 10, 0, 500).train_idx
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; full data {len(labels)} images")

    results: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # alternate so that background load hits every pipeline alike
        results.setdefault("compute-only b100", []).append(
            rate_compute_only(images, labels, mean, std, 100, args.full_steps))
        results.setdefault("classic full b100", []).append(
            rate_classic(images, labels, mean, std, 100, 1, args.full_steps))
        results.setdefault("tensor full b100", []).append(
            rate_tensor(images, labels, mean, std, 100, 1, args.full_steps))
        results.setdefault("compute-only b16", []).append(
            rate_compute_only(images, labels, mean, std, 16, 6 * args.small_epochs))
        results.setdefault("classic small b16", []).append(
            rate_classic(data.train_images[small], data.train_labels[small], mean, std, 16, args.small_epochs, None))
        results.setdefault("tensor small b16", []).append(
            rate_tensor(data.train_images[small], data.train_labels[small], mean, std, 16, args.small_epochs, None))
    paired = [t / c for t, c in zip(results["tensor full b100"], results["compute-only b100"])]
    print("full data, tensor / compute-only in each repeat: " + ", ".join(f"{r:.2f}" for r in paired)
          + f" (median {sorted(paired)[len(paired) // 2]:.2f})")
    best = {k: max(v) for k, v in results.items()}
    for key, value in best.items():
        print(f"{key:<20} {value:8.0f} images/s")
    print(f"full data:  classic {best['classic full b100'] / best['compute-only b100']:.2f} and tensor "
          f"{best['tensor full b100'] / best['compute-only b100']:.2f} of the compute-only rate")
    print(f"small data: tensor / classic = {best['tensor small b16'] / best['classic small b16']:.2f}x "
          f"(tensor reaches {best['tensor small b16'] / best['compute-only b16']:.2f} of compute-only at batch 16)")


if __name__ == "__main__":
    main()
