"""Strong augmentation policies on whole batches: AutoAugment (CIFAR-10 policy), RandAugment, TrivialAugmentWide.

Every image draws its own operations and magnitudes, as in the papers (and torchvision, one image at a
time), but they run batch-wise: the images of a batch that drew the same operation go through it
together, and every geometric operation of a round is one affine warp with a matrix per image. A batch
costs about one call per operation, not one per image. The draws come from the caller's generator (the
loader's, seeded by (seed, epoch)), so an epoch's policy is as reproducible as its crops and flips.

The operations are the PIL ones the policies were searched with, in torchvision's definitions (magnitude
ranges, random signs, nearest-neighbour geometry with black fill), on float images in [0, 1]. kornia
supplies the batched PIL equivalents (equalize, posterize, sharpness), the grey conversion and the warp.
kornia's own policy modules (kornia.augmentation.auto) are not used: they choose one sub-policy for the
whole batch (a 100-image training set, one batch, would get the same operations for every image in an
epoch), draw from torch's global generator, and map magnitudes their own way (a shear of 0.3 becomes
0.3 x 180 degrees; AutoAugment's magnitude bins select signed ranges instead of a magnitude and a sign).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from kornia.color import rgb_to_grayscale
from kornia.enhance import equalize as _equalize
from kornia.enhance import posterize as _posterize
from kornia.enhance import sharpness as _sharpness
from kornia.geometry.transform import warp_affine

from filterprior.config import POLICIES
from filterprior.errors import UserError

RANDAUGMENT_BINS = 31  # RandAugment's magnitude m is a bin in 0..30 (torchvision's num_magnitude_bins)

# Every operation, by index. The geometric ones are warped together; the rest go one call per operation.
OPS = (
    "identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
    "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
    "auto_contrast", "equalize", "invert",
)
OP_INDEX = {name: i for i, name in enumerate(OPS)}
GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
SIGNED = set(GEOMETRIC) | {"brightness", "color", "contrast", "sharpness"}  # magnitude gets a random sign
# RandAugment and TrivialAugmentWide draw uniformly from these 14 (torchvision's list; no invert)
RANDOM_OPS = OPS[:14]

# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, appendix): 25 sub-policies of two
# (operation, probability, magnitude bin 0..9) steps; a bin of None: the operation has no magnitude.
CIFAR10_POLICY: tuple[tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...] = (
    (("invert", 0.1, None), ("contrast", 0.2, 6)),
    (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
    (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
    (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
    (("auto_contrast", 0.5, None), ("equalize", 0.9, None)),
    (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
    (("color", 0.4, 3), ("brightness", 0.6, 7)),
    (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
    (("equalize", 0.6, None), ("equalize", 0.5, None)),
    (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
    (("color", 0.7, 7), ("translate_x", 0.5, 8)),
    (("equalize", 0.3, None), ("auto_contrast", 0.4, None)),
    (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
    (("brightness", 0.9, 6), ("color", 0.2, 8)),
    (("solarize", 0.5, 2), ("invert", 0.0, None)),
    (("equalize", 0.2, None), ("auto_contrast", 0.6, None)),
    (("equalize", 0.2, None), ("equalize", 0.6, None)),
    (("color", 0.9, 9), ("equalize", 0.6, None)),
    (("auto_contrast", 0.8, None), ("solarize", 0.2, 8)),
    (("brightness", 0.1, 3), ("color", 0.7, 0)),
    (("solarize", 0.4, 5), ("auto_contrast", 0.9, None)),
    (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
    (("auto_contrast", 0.9, None), ("solarize", 0.8, 3)),
    (("equalize", 0.8, None), ("invert", 0.1, None)),
    (("translate_y", 0.7, 9), ("auto_contrast", 0.9, None)),
)


def magnitude_bins(name: str, num_bins: int, height: int, width: int, wide: bool = False) -> torch.Tensor | None:
    """The magnitudes of operation `name` from bin 0 to num_bins - 1 (None: it has none), as torchvision
    defines them for AutoAugment and RandAugment, or for TrivialAugmentWide when `wide`."""
    if name in ("shear_x", "shear_y"):
        return torch.linspace(0.0, 0.99 if wide else 0.3, num_bins)
    if name in ("translate_x", "translate_y"):  # pixels; the standard range is 150/331 of the image side
        side = width if name == "translate_x" else height
        return torch.linspace(0.0, 32.0 if wide else 150.0 / 331.0 * side, num_bins)
    if name == "rotate":  # degrees
        return torch.linspace(0.0, 135.0 if wide else 30.0, num_bins)
    if name in ("brightness", "color", "contrast", "sharpness"):  # the factor is 1 + magnitude
        return torch.linspace(0.0, 0.99 if wide else 0.9, num_bins)
    if name == "posterize":  # bits kept: 8 down to 4 (2 when wide)
        return 8 - (torch.arange(num_bins) / ((num_bins - 1) / (6 if wide else 4))).round()
    if name == "solarize":  # threshold in 0..255
        return torch.linspace(255.0, 0.0, num_bins)
    return None


@dataclass(frozen=True)
class Policy:
    """One of POLICIES with its settings; `draw` picks every image's operations, `apply` runs them."""

    name: str = "none"
    n: int = 2  # RandAugment: operations per image
    m: int = 9  # RandAugment: magnitude bin, 0..30

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise UserError(f"augmentation policy {self.name!r} is unknown; expected one of {', '.join(POLICIES)}")
        if self.name == "randaugment":
            if self.n < 1:
                raise UserError(f"RandAugment needs 1 or more operations per image (n), got {self.n}")
            if not 0 <= self.m < RANDAUGMENT_BINS:
                raise UserError(f"RandAugment magnitude m must be in 0..{RANDAUGMENT_BINS - 1}, got {self.m}")

    @property
    def rounds(self) -> int:
        """Operations applied one after the other to each image."""
        return {"none": 0, "autoaugment": 2, "randaugment": self.n, "trivialaugment": 1}[self.name]

    def draw(self, count: int, generator: torch.Generator, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Operations (count x rounds, indices into OPS) and signed magnitudes (count x rounds, float) for
        `count` images, drawn on the CPU from `generator`; a step that is skipped is the identity."""
        rounds = self.rounds
        ops = torch.zeros((count, rounds), dtype=torch.int64)
        mags = torch.zeros((count, rounds), dtype=torch.float32)
        if self.name == "autoaugment":
            chosen = torch.randint(0, len(CIFAR10_POLICY), (count,), generator=generator)
            applied = torch.rand((count, 2), generator=generator)
            for k, subpolicy in enumerate(CIFAR10_POLICY):
                rows = chosen == k
                for step, (name, probability, bin_) in enumerate(subpolicy):
                    bins = magnitude_bins(name, 10, height, width)
                    on = rows & (applied[:, step] < probability)
                    ops[on, step] = OP_INDEX[name]
                    if bins is not None:
                        mags[on, step] = float(bins[bin_])
        elif self.name in ("randaugment", "trivialaugment"):
            wide = self.name == "trivialaugment"
            picks = torch.randint(0, len(RANDOM_OPS), (count, rounds), generator=generator)
            levels = torch.randint(0, RANDAUGMENT_BINS, (count, rounds), generator=generator)
            for k, name in enumerate(RANDOM_OPS):
                on = picks == k
                ops[on] = OP_INDEX[name]
                bins = magnitude_bins(name, RANDAUGMENT_BINS, height, width, wide=wide)
                if bins is not None:
                    mags[on] = bins[levels[on]] if wide else float(bins[self.m])
        signs = torch.where(torch.rand((count, rounds), generator=generator) < 0.5, -1.0, 1.0)
        signed = torch.tensor([name in SIGNED for name in OPS])[ops]
        return ops, torch.where(signed, mags * signs, mags)

    def apply(self, images: torch.Tensor, ops: torch.Tensor, mags: torch.Tensor) -> torch.Tensor:
        """Images (B x 3 x H x W float in [0, 1], any device) after their drawn operations, round by round;
        `ops` and `mags` are this batch's rows of `draw` (on the CPU)."""
        return apply_ops(images, ops, mags)


def apply_ops(images: torch.Tensor, ops: torch.Tensor, mags: torch.Tensor) -> torch.Tensor:
    """Apply ops[i, r] with magnitude mags[i, r] to image i, for r = 0, 1, ...; returns a new tensor."""
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise UserError(f"augmentation policies expect B x 3 x H x W float images in [0, 1], got "
                        f"{images.dtype} {tuple(images.shape)}")
    x = images.clone()
    geometric = torch.tensor([OP_INDEX[name] for name in GEOMETRIC])
    for r in range(ops.shape[1]):
        col, mag = ops[:, r], mags[:, r]
        warp = torch.isin(col, geometric).nonzero().squeeze(1)
        if len(warp):
            _update(x, warp, lambda part, rows=warp: _warp(part, col[rows], mag[rows]))
        for k in col.unique().tolist():
            name = OPS[k]
            if name == "identity" or name in GEOMETRIC:
                continue
            rows = (col == k).nonzero().squeeze(1)
            m = mag[rows].to(x.device)
            _update(x, rows, lambda part, fn=_COLOUR[name], m=m: fn(part, m))
    return x


def _update(x: torch.Tensor, rows: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    rows = rows.to(x.device)
    x.index_copy_(0, rows, fn(x.index_select(0, rows)).to(x.dtype))


def _warp(x: torch.Tensor, ops: torch.Tensor, mags: torch.Tensor) -> torch.Tensor:
    """Shear, translate or rotate each image (one forward pixel-coordinate matrix each), nearest, black fill."""
    b, _, h, w = x.shape
    matrix = torch.eye(3).repeat(b, 1, 1)
    for name in GEOMETRIC:
        on = ops == OP_INDEX[name]
        m = mags[on]
        if name == "shear_x":  # PIL: out(x, y) = in(x + m y, y), y from the image's top edge (pixel centres at +1/2)
            matrix[on, 0, 1], matrix[on, 0, 2] = -m, -m / 2
        elif name == "shear_y":
            matrix[on, 1, 0], matrix[on, 1, 2] = -m, -m / 2
        elif name == "translate_x":  # whole pixels, truncated as torchvision does
            matrix[on, 0, 2] = m.trunc()
        elif name == "translate_y":
            matrix[on, 1, 2] = m.trunc()
        else:  # rotate by m degrees (counter-clockwise when positive) about the image centre
            a = m * (math.pi / 180)
            cos, sin = a.cos(), a.sin()
            cx, cy = (w - 1) / 2, (h - 1) / 2
            matrix[on, 0, 0], matrix[on, 0, 1], matrix[on, 0, 2] = cos, sin, cx - cos * cx - sin * cy
            matrix[on, 1, 0], matrix[on, 1, 1], matrix[on, 1, 2] = -sin, cos, cy + sin * cx - cos * cy
    return warp_affine(x, matrix[:, :2].to(x.device, x.dtype), (h, w), mode="nearest", padding_mode="zeros",
                       align_corners=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: other + factor * (x - other), clipped to [0, 1]."""
    f = factor.view(-1, 1, 1, 1)
    return (other + f * (x - other)).clamp(0.0, 1.0)


def _auto_contrast(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to span [0, 1] (a flat channel is left as it is)."""
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    flat = high <= low
    scale = torch.where(flat, torch.ones_like(high), 1.0 / (high - low).clamp_min(1e-12))
    return ((x - torch.where(flat, torch.zeros_like(low), low)) * scale).clamp(0.0, 1.0)


_COLOUR: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "brightness": lambda x, m: _blend(x, torch.zeros_like(x), 1 + m),
    "color": lambda x, m: _blend(x, rgb_to_grayscale(x).expand_as(x), 1 + m),
    "contrast": lambda x, m: _blend(x, rgb_to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), 1 + m),
    "sharpness": lambda x, m: _sharpness(x, 1 + m).clamp(0.0, 1.0),
    "posterize": lambda x, m: _posterize(x, m.to(torch.int64)),
    "solarize": lambda x, m: torch.where(x >= (m / 255).view(-1, 1, 1, 1), 1.0 - x, x),
    "auto_contrast": _auto_contrast,
    "equalize": lambda x, _: _equalize(x),
    "invert": lambda x, _: 1.0 - x,
}
