"""ResNet-18 in its common CIFAR form, and the BasicBlock it shares with `resnet-scaled`."""

from __future__ import annotations

import torch
from torch import nn

from filterprior.models.registry import register_model


class BasicBlock(nn.Module):
    """Two bias-free kxk convs with BN; ReLU after the first and after the residual sum.

    The shortcut is the identity unless the stride or the channel count changes; then it is a bias-free
    conv with kernel `shortcut_kernel` (padding k//2, same stride) followed by BN.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, kernel: int = 3, shortcut_kernel: int = 1
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(
                    c_in, c_out, shortcut_kernel, stride=stride, padding=shortcut_kernel // 2, bias=False
                ),
                nn.BatchNorm2d(c_out),
            )
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    """The CIFAR stem: a bias-free conv (stride 1, 'same' padding), BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_model("resnet18")
def resnet18(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """CIFAR ResNet-18: 3x3 stem at stride 1 (no max-pool), BasicBlocks [2, 2, 2, 2] of 64..512 channels.

    Layers 2-4 halve the resolution (32 -> 16 -> 8 -> 4) with 1x1 conv + BN shortcuts; global average
    pool, linear head. 11,173,962 parameters for 10 classes.
    """
    layers: list[nn.Module] = [conv_bn_relu(in_channels, 64)]
    c_in = 64
    for index, c_out in enumerate((64, 128, 256, 512)):
        stride = 1 if index == 0 else 2
        layers.append(nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out)))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)
