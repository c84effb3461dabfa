"""Discriminators that judge kernels: the seed's small conv net, and an MLP. Both return logits (B,)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from filterprior.errors import UserError

D_ARCHS = ("conv", "mlp")


class ConvDiscriminator(nn.Module):
    """The seed's D: conv 3x3 -> 64, norm, LeakyReLU(0.2), conv 3x3 -> 128, norm, LeakyReLU(0.2),
    global average pool, linear 128 -> 1. Padding 1 keeps tiny (3x3) kernels from shrinking to nothing.
    The sigmoid lives in the loss (BCE with logits) for numerical stability."""

    def __init__(self, in_channels: int, norm: str = "batch", sn: bool = False):
        super().__init__()
        wrap = _spectral_norm if sn else (lambda m: m)
        self.body = nn.Sequential(
            wrap(nn.Conv2d(in_channels, 64, 3, padding=1)),
            _norm(norm, 64),
            nn.LeakyReLU(0.2),
            wrap(nn.Conv2d(64, 128, 3, padding=1)),
            _norm(norm, 128),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = wrap(nn.Linear(128, 1))

    def forward(self, kernels: Tensor) -> Tensor:
        return self.head(self.body(kernels)).squeeze(1)


class MLPDiscriminator(nn.Module):
    """Flattened kernel -> 256 -> 256 -> 1 with LeakyReLU(0.2): sees exact positions, no translation bias."""

    def __init__(self, in_features: int, norm: str = "none", sn: bool = False, hidden: int = 256):
        super().__init__()
        wrap = _spectral_norm if sn else (lambda m: m)
        self.body = nn.Sequential(
            nn.Flatten(),
            wrap(nn.Linear(in_features, hidden)),
            nn.LeakyReLU(0.2),
            wrap(nn.Linear(hidden, hidden)),
            nn.LeakyReLU(0.2),
        )
        self.head = wrap(nn.Linear(hidden, 1))

    def forward(self, kernels: Tensor) -> Tensor:
        return self.head(self.body(kernels)).squeeze(1)


def build_discriminator(arch: str, kernel_shape: tuple[int, ...], norm: str, sn: bool) -> nn.Module:
    """`kernel_shape` is (C, kh, kw): C = 1 for 2-D slices, the in-channels for whole filters."""
    if arch == "conv":
        return ConvDiscriminator(kernel_shape[0], norm=norm, sn=sn)
    if arch == "mlp":
        features = 1
        for size in kernel_shape:
            features *= size
        return MLPDiscriminator(features, sn=sn)
    raise UserError(f"prior.adversarial.d_arch: {arch!r} is not a discriminator; expected one of {', '.join(D_ARCHS)}")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # per-sample, so a gradient penalty on single samples stays valid
        return nn.GroupNorm(1, channels)
    return nn.Identity()
