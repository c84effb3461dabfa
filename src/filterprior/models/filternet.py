"""FilterNet: the seed document's plain conv net and its strided variant for the small-data study."""

from __future__ import annotations

from torch import nn

from filterprior.errors import UserError
from filterprior.models.heads import pooled_head
from filterprior.models.registry import check_fraction, check_int_list, register_model

S2_KERNELS = (7, 5, 5, 3)


@register_model("filternet")
def filternet(num_classes: int = 10, in_channels: int = 3, batchnorm: bool = False) -> nn.Module:
    """The seed's net: convs 3->64 7x7, 64->128 5x5, 128->256 3x3, stride 1, 'same' padding, no pooling.

    ReLU after each conv (BatchNorm before it when `batchnorm`), global average pool, linear head.
    The convs hold 192, 8,192 and 32,768 2-D kernels (in x out): the population the priors act on.
    """
    if not isinstance(batchnorm, bool):
        raise UserError(f"model option 'batchnorm': expected true or false, got {batchnorm!r}")
    layers: list[nn.Module] = []
    for c_in, c_out, k in ((in_channels, 64, 7), (64, 128, 5), (128, 256, 3)):
        # A bias before BatchNorm is redundant (BN subtracts the mean).
        layers.append(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, num_classes)]
    return nn.Sequential(*layers)


@register_model("filternet-s2")
def filternet_s2(
    num_classes: int = 10,
    in_channels: int = 3,
    widths: list[int] | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """The small-data study's main net: four stride-2 convs (7x7, 5x5, 5x5, 3x3, padding k//2).

    Each conv is bias-free and followed by BatchNorm + ReLU; then global average pool, optional dropout,
    linear head. `widths` defaults to [64, 128, 128, 256]. Stride 2 from the first layer keeps it cheap
    (32x32 -> 16 -> 8 -> 4 -> 2) while the first layer keeps the seed's 7x7 filters.
    """
    widths = check_int_list("widths", [64, 128, 128, 256] if widths is None else widths, length=4)
    dropout = check_fraction("dropout", dropout)
    layers: list[nn.Module] = []
    c_in = in_channels
    for c_out, k in zip(widths, S2_KERNELS):
        layers += [
            nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
        c_in = c_out
    layers += pooled_head(nn.AdaptiveAvgPool2d(1), c_in, num_classes, dropout)
    return nn.Sequential(*layers)
