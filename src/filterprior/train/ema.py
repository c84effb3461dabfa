"""An exponential moving average of a model's weights, updated after every optimiser step.

torch's AveragedModel keeps the copy; the update is its EMA rule (get_ema_multi_avg_fn) with the decay
warmed up as TensorFlow's ExponentialMovingAverage does with num_updates: the first update copies the
weights, and update t after it (t = 1, 2, ...) uses the decay min(decay, (1 + t) / (10 + t)). Small-data runs take few steps (100 images at batch 128 are one step an
epoch), and a fixed 0.999 over 80 steps would leave the average ~92 % the random initialisation.

BatchNorm's running statistics are averaged along with the weights (use_buffers=True, as timm's ModelEmaV2
does), so the averaged model carries statistics of its own and needs no extra pass over the data.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay used at update number `updates` (counting from 0)."""
    return min(decay, (1 + updates) / (10 + updates))


class WeightEMA:
    """`update(model)` after each step; `.model` is the averaged model to evaluate and export.

    torch's AveragedModel holds the average and its state dict (`module.*`, `n_averaged`), but the update
    is done here with AveragedModel's own arithmetic (a copy at the first update, then one foreach lerp a
    device and dtype) and the update count kept on the host: AveragedModel.update_parameters reads
    `n_averaged` back from the device twice a step (`n_averaged == 0`, `n_averaged > 0`), which on a GPU
    makes the host wait for every step to finish.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.averaged = AveragedModel(model, use_buffers=True)
        self._updates = 0  # = averaged.n_averaged, known on the host

    @property
    def model(self) -> nn.Module:
        return self.averaged.module

    @property
    def updates(self) -> int:
        return self._updates

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        averaged = [t.detach() for t in itertools.chain(self.model.parameters(), self.model.buffers())]
        current = [t.detach() for t in itertools.chain(model.parameters(), model.buffers())]
        if self._updates == 0:
            for a, c in zip(averaged, current):
                a.copy_(c)
        else:
            groups: dict[tuple, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for a, c in zip(averaged, current):
                pair = groups.setdefault((a.device, a.dtype), ([], []))
                pair[0].append(a)
                pair[1].append(c)
            ema_update = get_ema_multi_avg_fn(warmed_up_decay(self.decay, self._updates))
            for group_averaged, group_current in groups.values():
                ema_update(group_averaged, group_current, None)
        self.averaged.n_averaged += 1
        self._updates += 1

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
        self._updates = int(self.averaged.n_averaged)
