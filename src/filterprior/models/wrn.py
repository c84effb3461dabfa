"""Wide ResNets (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016), the CIFAR form.

WRN-d-k: a 3x3 stem conv to 16 channels, three groups of n = (d - 4) / 6 pre-activation basic blocks of
16k, 32k and 64k channels (the second and third groups start at stride 2: 32x32 -> 16 -> 8), then
BN-ReLU, global average pool and a linear head. A block is BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3
plus the shortcut; where the width or stride changes, the shortcut is a 1x1 conv of the block's
pre-activated input (as in the authors' code). Convs have no bias; He-normal init (fan-out), as theirs.
"""

from __future__ import annotations

import torch
from torch import nn

from filterprior.errors import UserError
from filterprior.models.init import init_conv_bn_fan_out
from filterprior.models.registry import check_fraction, check_int, register_model


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.conv2(self.dropout(self.relu2(self.bn2(self.conv1(activated)))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, dropout: float, num_classes: int, in_channels: int) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        groups = []
        c_in = widths[0]
        for g in range(3):
            blocks = []
            for i in range(n):  # the first block of the second and third groups halves the resolution
                blocks.append(PreActBlock(c_in, widths[g + 1], 2 if g > 0 and i == 0 else 1, dropout))
                c_in = widths[g + 1]
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(widths[3], num_classes)
        init_conv_bn_fan_out(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(self.flatten(self.pool(self.relu(self.bn(x)))))


def wide_resnet(num_classes: int, in_channels: int, depth: int, widen: int, dropout: float) -> nn.Module:
    depth = check_int("depth", depth, minimum=10)
    if (depth - 4) % 6:
        raise UserError(f"model option 'depth': a Wide ResNet's depth is 6n + 4 (10, 16, 22, 28, ...), got {depth}")
    widen = check_int("widen", widen, minimum=1)
    dropout = check_fraction("dropout", dropout)
    return WideResNet(depth, widen, dropout, num_classes, in_channels)


@register_model("wrn-16-4")
def wrn_16_4(num_classes: int = 10, in_channels: int = 3, depth: int = 16, widen: int = 4,
             dropout: float = 0.0) -> nn.Module:
    """WRN-16-4 (2.7 M parameters with 10 classes); depth 6n + 4, widen factor k, dropout between the convs."""
    return wide_resnet(num_classes, in_channels, depth, widen, dropout)


@register_model("wrn-16-8")
def wrn_16_8(num_classes: int = 10, in_channels: int = 3, depth: int = 16, widen: int = 8,
             dropout: float = 0.0) -> nn.Module:
    """WRN-16-8 (11.0 M parameters with 10 classes): the published AutoAugment small-data baseline."""
    return wide_resnet(num_classes, in_channels, depth, widen, dropout)


@register_model("wrn-28-10")
def wrn_28_10(num_classes: int = 10, in_channels: int = 3, depth: int = 28, widen: int = 10,
              dropout: float = 0.0) -> nn.Module:
    """WRN-28-10 (36.5 M parameters with 10 classes)."""
    return wide_resnet(num_classes, in_channels, depth, widen, dropout)
