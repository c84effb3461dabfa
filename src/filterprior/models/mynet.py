"""MyNet: a tiny LeNet-like net and a deeper narrow VGG-like net."""

from __future__ import annotations

from torch import nn

from filterprior.models.registry import register_model

DEEP_WIDTHS = (20, 24, 32, 40, 48, 56, 64, 72)


@register_model("mynet-small")
def mynet_small(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Conv 3->8 5x5 (no padding), ReLU, max-pool 2, conv 8->16 3x3, ReLU, avg-pool 2, FC 576->128->32.

    32 -> 28 -> 14 -> 12 -> 6, so the flatten is 16*6*6 = 576. 80,090 parameters for 10 classes.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 5),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3),
        nn.ReLU(inplace=True),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(576, 128),
        nn.ReLU(inplace=True),
        nn.Linear(128, 32),
        nn.ReLU(inplace=True),
        nn.Linear(32, num_classes),
    )


@register_model("mynet-deep")
def mynet_deep(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Eight 3x3 convs (padding 1) of widths 20,24,32,40 | max-pool 2 | 48,56,64,72 | max-pool 4.

    Pooling: max-pool 2 after conv4 (32 -> 16) and max-pool 4 after conv8 (16 -> 4; the same as two
    max-pool 2 in a row), so the flatten is 72*4*4 = 1152. Each conv is followed by ReLU; conv1 and conv5
    by BatchNorm2d(affine=False) first (conv -> BN -> ReLU). Head: FC 1152->256, BatchNorm1d(affine=False),
    ReLU, dropout 0.3, ->64, ReLU, ->32, ReLU, dropout 0.1, ->16, ReLU, ->classes.
    """
    layers: list[nn.Module] = []
    c_in = in_channels
    for index, c_out in enumerate(DEEP_WIDTHS, start=1):
        layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
        if index in (1, 5):
            layers.append(nn.BatchNorm2d(c_out, affine=False))
        layers.append(nn.ReLU(inplace=True))
        if index == 4:
            layers.append(nn.MaxPool2d(2))
        c_in = c_out
    layers += [
        nn.MaxPool2d(4),
        nn.Flatten(),
        nn.Linear(72 * 4 * 4, 256),
        nn.BatchNorm1d(256, affine=False),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Linear(256, 64),
        nn.ReLU(inplace=True),
        nn.Linear(64, 32),
        nn.ReLU(inplace=True),
        nn.Dropout(0.1),
        nn.Linear(32, 16),
        nn.ReLU(inplace=True),
        nn.Linear(16, num_classes),
    ]
    return nn.Sequential(*layers)
