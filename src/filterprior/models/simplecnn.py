"""SimpleCNN: three conv + BN + ReLU + max-pool blocks and a three-layer MLP head."""

from __future__ import annotations

from torch import nn

from filterprior.models.registry import register_model


@register_model("simplecnn")
def simplecnn(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Blocks of conv 2x2 (padding 1) + BN + ReLU + max-pool 2 with widths 32/64/128; FC 2048->256->128.

    The 2x2 kernels with padding 1 grow each map by one pixel (32->33->16->17->8->9->4), so the flatten is
    128*4*4 = 2048. 600,746 parameters for 10 classes.
    """
    layers: list[nn.Module] = []
    c_in = in_channels
    for c_out in (32, 64, 128):
        layers += [
            nn.Conv2d(c_in, c_out, 2, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        c_in = c_out
    layers += [
        nn.Flatten(),
        nn.Linear(2048, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, 128),
        nn.ReLU(inplace=True),
        nn.Linear(128, num_classes),
    ]
    return nn.Sequential(*layers)
