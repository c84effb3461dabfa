"""Weight initialisation shared by the ResNet-family models."""

from __future__ import annotations

from torch import nn


def init_conv_bn_fan_out(model: nn.Module) -> None:
    """He-normal (fan-out) convolutions and identity BatchNorms, as torchvision's ResNets and WRN's authors do."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
