"""Freezing bank-initialised layers: conv weights stop learning; a copied BatchNorm keeps the source's
statistics and affine parameters (measured on the validation pool: better than re-estimating them on
a few images, see benchmarks/RESULTS.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d that always normalises with its stored statistics and never updates anything.

    Its state dict has the same keys as nn.BatchNorm2d's, so exported weights load into the plain model.
    """

    def __init__(self, norm: nn.BatchNorm2d):
        super().__init__()
        self.eps = norm.eps
        self.num_features = norm.num_features
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(key, getattr(norm, key).detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def freeze_conv(conv: nn.Conv2d) -> None:
    for p in conv.parameters(recurse=False):
        p.requires_grad_(False)


def freeze_norm(model: nn.Module, norm: nn.BatchNorm2d) -> None:
    """Swap `norm` for a FrozenBatchNorm2d in its parent module."""
    for name, module in model.named_modules():
        if module is norm:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, FrozenBatchNorm2d(norm))
            return
    raise ValueError("the BatchNorm to freeze is not part of the model")
