"""`resnet18-imagenet`: torchvision's ResNet-18 (the ImageNet layout), built here without torchvision.

This is "the built-in ResNet18" the seed project (document 004) trained from scratch on CIFAR-10:
its 7x7 stride-2 stem and 3x3 stride-2 max-pool shrink a 32x32 image to 8x8 before the first block,
so it costs ~15x fewer FLOPs than the CIFAR variant `resnet18` (and is weaker on 32x32 images).

Module names and initialisation follow torchvision's `resnet18`, so state dicts carry the same keys
(conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc, ...) and the same starting distribution.
"""

from __future__ import annotations

import torch
from torch import nn

from filterprior.models.init import init_conv_bn_fan_out
from filterprior.models.registry import register_model


class Block(nn.Module):
    """torchvision's BasicBlock: 3x3 conv (stride s), BN, ReLU, 3x3 conv, BN, add the shortcut, ReLU.

    The shortcut (`downsample`) is a 1x1 stride-s conv + BN where the stride or the width changes.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetImageNet(nn.Module):
    """Stem (7x7/2 conv 64, BN, ReLU, 3x3/2 max-pool), four stages of BasicBlocks, average pool, fc."""

    def __init__(self, blocks: tuple[int, ...], num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = 64
        for index, (c_out, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            stride = 1 if index == 0 else 2
            stage = [Block(c_in, c_out, stride)] + [Block(c_out, c_out) for _ in range(count - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
            c_in = c_out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        # torchvision's init; the fc keeps torch's default (as torchvision's does).
        init_conv_bn_fan_out(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model("resnet18-imagenet")
def resnet18_imagenet(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet-18 layout: on 32x32 input the maps are 16 (stem), 8 (pool), 8, 4, 2, 1.

    11,181,642 parameters for 10 classes (torchvision's resnet18 with a 10-class head).
    """
    return ResNetImageNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels)
