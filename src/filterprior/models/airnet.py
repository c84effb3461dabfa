"""AirNet: the plain VGG-like net of KellerJordan/cifar10-airbench (airbench94), trained normally.

Used as a stronger CIFAR-100 source for transfer to small CIFAR-10 subsets: on one CPU core pair it
trains a CIFAR-100 epoch in about 2.5 minutes, while ResNet-18 takes about 8.
"""

from __future__ import annotations

from torch import nn

from filterprior.models.heads import pooled_head
from filterprior.models.registry import check_fraction, check_int, check_int_list, register_model


def _conv_group(c_in: int, c_out: int) -> list[nn.Module]:
    # airbench's order: conv, pool, then BatchNorm (4x cheaper after the pool) and activation.
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(c_out),
        nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.GELU(),
    ]


@register_model("airnet")
def airnet(
    num_classes: int = 10,
    in_channels: int = 3,
    stem: int = 32,
    widths: list[int] | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """A 3x3 stem conv, then three groups of two 3x3 convs with a 2x max-pool after each group's first
    conv (32x32 -> 16 -> 8 -> 4), BatchNorm + GELU after every conv, global max-pool, optional dropout,
    linear head.

    `widths` defaults to airbench94's [64, 256, 256] (2.0 M parameters with 100 classes). airbench's
    data-whitened 2x2 first layer is replaced by an ordinary learned 3x3 conv, so the first layer's
    filters are of the kind a filter bank collects.
    """
    stem = check_int("stem", stem, minimum=1)
    widths = check_int_list("widths", [64, 256, 256] if widths is None else widths, length=3)
    dropout = check_fraction("dropout", dropout)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, stem, 3, padding=1, bias=False),
        nn.BatchNorm2d(stem),
        nn.GELU(),
    ]
    c_in = stem
    for c_out in widths:
        layers += _conv_group(c_in, c_out)
        c_in = c_out
    layers += pooled_head(nn.AdaptiveMaxPool2d(1), c_in, num_classes, dropout)
    return nn.Sequential(*layers)
