"""The classifier head several families share: global pooling, flatten, optional dropout, linear."""

from __future__ import annotations

from torch import nn


def pooled_head(pool: nn.Module, features: int, num_classes: int, dropout: float = 0.0) -> list[nn.Module]:
    """`pool`, Flatten, Dropout(`dropout`) only when it is > 0 (so the module indices, and with them the
    state-dict keys and bank layer names, are those of a head without it), Linear(`features`, classes)."""
    layers: list[nn.Module] = [pool, nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(features, num_classes))
    return layers
