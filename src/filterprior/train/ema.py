"""An exponential moving average of a model's weights, updated after every optimiser step.

torch's AveragedModel keeps the copy; the update is its EMA rule (get_ema_multi_avg_fn) with the decay
warmed up as TensorFlow's ExponentialMovingAverage does with num_updates: the first update copies the
weights, and update t after it (t = 1, 2, ...) uses the decay min(decay, (1 + t) / (10 + t)). Small-data runs take few steps (100 images at batch 128 are one step an
epoch), and a fixed 0.999 over 80 steps would leave the average ~92 % the random initialisation.

BatchNorm's running statistics are averaged along with the weights (use_buffers=True, as timm's ModelEmaV2
does), so the averaged model carries statistics of its own and needs no extra pass over the data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay used at update number `updates` (counting from 0)."""
    return min(decay, (1 + updates) / (10 + updates))


class WeightEMA:
    """`update(model)` after each step; `.model` is the averaged model to evaluate and export."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay

        def average(ema: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
            get_ema_multi_avg_fn(warmed_up_decay(decay, int(updates)))(ema, current, updates)

        self.averaged = AveragedModel(model, multi_avg_fn=average, use_buffers=True)

    @property
    def model(self) -> nn.Module:
        return self.averaged.module

    @property
    def updates(self) -> int:
        return int(self.averaged.n_averaged)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
