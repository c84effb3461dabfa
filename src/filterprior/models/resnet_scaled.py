"""`resnet-scaled`: a ResNet sized by (N, C1, B, F, K, P), after the 'ResNet under 5M parameters on
CIFAR-10' projects; the default is exactly their 4,435,082-parameter model."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as functional
from torch import nn

from filterprior.errors import UserError
from filterprior.models.heads import pooled_head
from filterprior.models.registry import check_fraction, check_int, check_int_list, register_model
from filterprior.models.resnet import BasicBlock, conv_bn_relu

IMAGE_SIZE = 32  # every zoo model takes 32x32 input; P is checked against the last layer's map


class DropBlock2d(nn.Module):
    """DropBlock (Ghiasi et al. 2018): drop square `block_size` patches instead of single activations.

    Inactive in eval mode and when `p` is 0. The seed rate is chosen so that about a fraction `p` of the
    activations is dropped; the survivors are rescaled to keep the mean.
    """

    def __init__(self, p: float, block_size: int = 3) -> None:
        super().__init__()
        self.p = p
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        _, _, height, width = x.shape
        size = min(self.block_size, height, width)
        valid = (height - size + 1) * (width - size + 1)
        gamma = self.p / size**2 * height * width / valid
        seeds = (torch.rand_like(x) < gamma).to(x.dtype)
        # Odd sizes: 'same' pooling; even sizes: pool then crop back to the input size.
        dropped = functional.max_pool2d(seeds, size, stride=1, padding=size // 2)[:, :, :height, :width]
        keep = 1.0 - dropped
        return x * keep * (keep.numel() / keep.sum().clamp(min=1.0))

    def extra_repr(self) -> str:
        return f"p={self.p}, block_size={self.block_size}"


def _per_layer(name: str, value: Any, layers: int, odd: bool = False) -> list[int]:
    """An int (the same for every layer) or a list with one int per layer."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * layers
    return check_int_list(name, value, length=layers, odd=odd)


@register_model("resnet-scaled")
def resnet_scaled(
    num_classes: int = 10,
    in_channels: int = 3,
    N: int = 2,
    C1: int = 128,
    B: int | list[int] = 3,
    F: int | list[int] = 3,
    K: int | list[int] = 3,
    P: int = 1,
    dropblock: float = 0.0,
    dropblock_size: int = 3,
    dropout: float = 0.0,
    param_budget: int | None = None,
) -> nn.Module:
    """A ResNet of N residual layers; layer i has C1 * 2**i channels and B[i] BasicBlocks.

    Layout: stem 3x3 conv (no bias) + BN + ReLU to C1 channels at 32x32; then layer i (i = 0..N-1) of
    B[i] BasicBlocks with bias-free F[i]xF[i] convs + BN; the first block of every layer after the first
    has stride 2. A block's shortcut is the identity, except where the stride or the channel count
    changes: there it is a bias-free K[i]xK[i] conv (same stride) + BN. Then average pool to PxP,
    flatten (C_N * P * P features), optional dropout, linear head. DropBlock (probability `dropblock`,
    square side `dropblock_size`) follows each residual layer when > 0.

    B, F and K take one int for every layer or a list with one per layer. F and K must be odd so the
    'same' padding keeps the residual sum aligned. The default (N=2, C1=128, B=[3,3], F=[3,3], K=[3,3],
    P=1) has exactly 4,435,082 parameters for 10 classes; the one 3x3 shortcut (128->256) holds 295,424.
    With `param_budget` set, a larger config raises UserError.
    """
    check_int("N", N, minimum=1)
    check_int("C1", C1, minimum=1)
    blocks = _per_layer("B", B, N)
    kernels = _per_layer("F", F, N, odd=True)
    shortcut_kernels = _per_layer("K", K, N, odd=True)
    check_int("P", P, minimum=1)
    last_size = max(1, IMAGE_SIZE >> (N - 1))
    if P > last_size:
        raise UserError(
            f"model option 'P': expected at most {last_size} (the last layer's map is "
            f"{last_size}x{last_size} for 32x32 input with N={N}), got {P}"
        )
    dropblock = check_fraction("dropblock", dropblock)
    check_int("dropblock_size", dropblock_size, minimum=1)
    dropout = check_fraction("dropout", dropout)
    if param_budget is not None:
        check_int("param_budget", param_budget, minimum=1)

    def build() -> nn.Module:
        return _build(
            in_channels, num_classes, C1, blocks, kernels, shortcut_kernels, P, dropblock, dropblock_size,
            dropout,
        )

    if param_budget is not None:
        # Count on the meta device first, so an oversized config is refused without allocating it.
        with torch.device("meta"):
            count = sum(p.numel() for p in build().parameters())
        if count > param_budget:
            raise UserError(
                f"resnet-scaled with N={N}, C1={C1}, B={blocks}, F={kernels}, K={shortcut_kernels}, P={P} "
                f"has {count:,} parameters, over the param_budget of {param_budget:,}"
            )
    return build()


def _build(
    in_channels: int,
    num_classes: int,
    C1: int,
    blocks: list[int],
    kernels: list[int],
    shortcut_kernels: list[int],
    P: int,
    dropblock: float,
    dropblock_size: int,
    dropout: float,
) -> nn.Module:
    layers: list[nn.Module] = [conv_bn_relu(in_channels, C1)]
    c_in = C1
    for i, (count, kernel, shortcut_kernel) in enumerate(zip(blocks, kernels, shortcut_kernels)):
        c_out = C1 * 2**i
        stage: list[nn.Module] = []
        for j in range(count):
            stride = 2 if (i > 0 and j == 0) else 1
            stage.append(BasicBlock(c_in, c_out, stride, kernel, shortcut_kernel))
            c_in = c_out
        if dropblock > 0:
            stage.append(DropBlock2d(dropblock, dropblock_size))
        layers.append(nn.Sequential(*stage))
    layers += pooled_head(nn.AdaptiveAvgPool2d(P), c_in * P * P, num_classes, dropout)
    return nn.Sequential(*layers)
