"""A batch loader that keeps the whole set as one uint8 tensor on the device and augments whole batches.

No worker processes and no per-image Python: a batch is an index into the resident tensor, then crop,
flip and cutout are tensor operations on the batch. All randomness of an epoch (order, crop offsets,
flips, cutout positions, a policy's operations) is drawn up front from a CPU torch.Generator seeded by
(seed, epoch), so an epoch is the same on every device and a resumed run replays it exactly.

Order: crop and flip on the uint8 images, then a strong policy (data/augment.py) on floats in [0, 1],
then cutout, then normalisation -- the order of the AutoAugment and TrivialAugment papers' CIFAR
recipes. The policy is drawn after everything else, so switching it on leaves order, crops and flips
as they were.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from filterprior.errors import UserError


@dataclass
class AugmentConfig:
    crop_padding: int = 4  # random crop of the image zero-padded by this many pixels; 0: no crop
    flip: bool = True  # random horizontal flip with probability 1/2
    cutout: int = 0  # side of a square set to zero (black), placed wholly inside the image; 0: none
    policy: str = "none"  # none | autoaugment | randaugment | trivialaugment (data/augment.py)
    randaugment_n: int = 2
    randaugment_m: int = 9

    @property
    def on(self) -> bool:
        """Whether any augmentation is switched on."""
        return self.crop_padding > 0 or self.flip or self.cutout > 0 or self.policy != "none"


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of N x H x W x 3 uint8 images, in [0, 1] units.

    Sums are taken in exact integer arithmetic chunk by chunk, so a large set needs no float copy.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise UserError(
            f"channel_stats expects non-empty N x H x W x 3 uint8 images, got {images.dtype} {images.shape}"
        )
    total = np.zeros(3, dtype=np.uint64)
    squares = np.zeros(3, dtype=np.uint64)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(-1, 3).astype(np.uint64)
        total += block.sum(axis=0)
        squares += (block * block).sum(axis=0)
    count = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total.astype(np.float64) / count
    var = squares.astype(np.float64) / count - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    return tuple(float(m) / 255 for m in mean), tuple(float(s) / 255 for s in std)


def _epoch_seed(seed: int, epoch: int) -> int:
    # hashed so that (seed, epoch) pairs never collide the way seed * K + epoch could
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}".encode()).digest()[:8], "little") >> 1


def _stats_tensor(values: Sequence[float], what: str, device: torch.device) -> torch.Tensor:
    values = [float(v) for v in values]
    if len(values) != 3:
        raise UserError(f"{what} must have 3 values (one per RGB channel), got {values}")
    if what == "std" and min(values) <= 0:
        raise UserError(f"std must be positive, got {values}")
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)


class TensorLoader:
    """Batches (float32 N x 3 x H x W normalised, int64 labels) from uint8 N x H x W x 3 images.

    Iterating once is one epoch: epoch e's order and augmentation depend only on (seed, e). A full pass
    advances the epoch by one; `set_epoch(e)` jumps to epoch e (call it before each epoch to make the
    epoch number explicit, e.g. when resuming). `len()` is the number of batches.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        augment: AugmentConfig | None,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        images = torch.as_tensor(images)
        labels = torch.as_tensor(labels)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise UserError(
                f"TensorLoader expects N x H x W x 3 uint8 images, got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != images.shape[:1]:
            raise UserError(f"TensorLoader got {len(images)} images but {labels.numel()} labels")
        if batch_size < 1:
            raise UserError(f"batch_size must be 1 or more, got {batch_size}")
        self.device = torch.device(device)
        self.images = images.permute(0, 3, 1, 2).contiguous().to(self.device)
        self.labels = labels.to(torch.int64).to(self.device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        self.seed = int(seed)
        self.drop_last = drop_last
        # DDP (train/distributed.py): (rank, world). Rank r yields its contiguous slice of every batch;
        # batches, order and draws stay the whole set's, so each image is augmented as in one process.
        self.rank, self.world = shard
        if not 0 <= self.rank < self.world:
            raise UserError(f"TensorLoader shard {shard}: expected (rank, world) with 0 <= rank < world")
        self.epoch = 0
        mean_t = _stats_tensor(mean, "mean", self.device)
        std_t = _stats_tensor(std, "std", self.device)
        # normalised = pixel * scale + shift, with pixel in 0..255
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        height, width = self.images.shape[2:]
        self.policy = None
        if augment is not None:
            if augment.policy != "none":
                from filterprior.data.augment import Policy  # imports kornia: only when a policy is on

                self.policy = Policy(augment.policy, augment.randaugment_n, augment.randaugment_m)
            if augment.crop_padding < 0:
                raise UserError(f"crop_padding must be 0 or more, got {augment.crop_padding}")
            if not 0 <= augment.cutout <= min(height, width):
                raise UserError(
                    f"cutout must be between 0 and the image size {min(height, width)}, got {augment.cutout}"
                )

    @property
    def black(self) -> torch.Tensor:
        """A black pixel as the batches hold it (1 x 3 x 1 x 1, normalised): what a shifted view fills with,
        as the random crop fills with zero pixels."""
        return self._shift

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def global_batch_size(self, b: int) -> int:
        """Images in batch b across all shards (the last batch may be short)."""
        return min(self.batch_size, len(self.labels) - b * self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _draws(self, n: int) -> dict[str, torch.Tensor]:
        """All random choices of the current epoch, drawn on the CPU in a fixed order."""
        gen = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        draws = {"order": torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)}
        aug = self.augment
        height, width = self.images.shape[2:]
        if aug is not None and aug.crop_padding > 0:
            draws["offsets"] = torch.randint(0, 2 * aug.crop_padding + 1, (n, 2), generator=gen)
        if aug is not None and aug.flip:
            draws["flip"] = torch.rand(n, generator=gen) < 0.5
        if aug is not None and aug.cutout > 0:
            top = torch.randint(0, height - aug.cutout + 1, (n,), generator=gen)
            left = torch.randint(0, width - aug.cutout + 1, (n,), generator=gen)
            draws["cutout"] = torch.stack([top, left], dim=1)
        # once an epoch, to the device (host to device: no wait for it); on the CPU they are there already
        draws = {k: v if v.device == self.device else v.to(self.device) for k, v in draws.items()}
        if self.policy is not None:  # stays on the CPU: it groups images by operation
            draws["policy_ops"], draws["policy_mags"] = self.policy.draw(n, gen, height, width)
        return draws

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        draws = self._draws(len(self.labels))
        for b in range(len(self)):
            start = b * self.batch_size
            pos = slice(*shard_bounds(start, start + self.global_batch_size(b), self.rank, self.world))
            idx = draws["order"][pos]
            x = self.images[idx]
            if "offsets" in draws:
                x = random_crop(x, draws["offsets"][pos], self.augment.crop_padding)
            if "flip" in draws:
                x = torch.where(draws["flip"][pos].view(-1, 1, 1, 1), x.flip(3), x)
            if self.policy is not None:  # floats in [0, 1] from here on
                x = self.policy.apply(x.float() / 255, draws["policy_ops"][pos], draws["policy_mags"][pos]) * 255
            if "cutout" in draws:
                x = cutout(x, draws["cutout"][pos], self.augment.cutout)
            yield x.float() * self._scale + self._shift, self.labels[idx]
        self.epoch += 1


def shard_bounds(start: int, stop: int, rank: int, world: int) -> tuple[int, int]:
    """Rank `rank`'s contiguous part of positions start..stop: sizes differ by at most one, larger first."""
    size, extra = divmod(stop - start, world)
    lo = start + rank * size + min(rank, extra)
    return lo, lo + size + (1 if rank < extra else 0)


def random_crop(x: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop each image of x (B x C x H x W) from its zero-padded copy at offsets (B x 2: dy, dx in 0..2p).

    Two gathers (rows, then columns) with each image's own index range: no loop, and nothing whose size
    depends on the offsets, so the host never waits for the device to know them.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (offsets[:, 0:1] + torch.arange(h, device=x.device)).view(b, 1, h, 1).expand(b, c, h, w + 2 * padding)
    x = padded.gather(2, rows)
    cols = (offsets[:, 1:2] + torch.arange(w, device=x.device)).view(b, 1, 1, w).expand(b, c, h, w)
    return x.gather(3, cols)


def cutout(x: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square per image, its top-left corner at corners (B x 2: y, x)."""
    h, w = x.shape[2:]
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    in_y = (ys >= corners[:, 0:1]) & (ys < corners[:, 0:1] + size)  # B x H
    in_x = (xs >= corners[:, 1:2]) & (xs < corners[:, 1:2] + size)  # B x W
    mask = in_y[:, None, :, None] & in_x[:, None, None, :]
    return x.masked_fill(mask, 0)
