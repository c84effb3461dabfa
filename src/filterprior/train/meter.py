"""An epoch's running sums kept on the device, so that a training step never waits for it.

On a GPU, `.item()` or `if not torch.isfinite(loss)` makes the host wait until the device has caught up;
twenty of them a step leave the GPU idle between kernels. The meter adds each step's losses, metrics and
correct predictions into device tensors and keeps a running "every loss so far was finite" flag, with the
first bad step, loss name and value, also on the device. The engine reads it all back once (`read`), at
the end of an epoch or every few hundred steps, and acts on a divergence there.

Sums are float64 (float32 on MPS, which has no float64): `sum += loss.double() * batch` is the same IEEE
arithmetic as the Python `sum += loss.item() * batch` it replaces, so metrics.csv keeps its numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Divergence:
    step: int  # the optimiser step (counting from 0) whose losses were first not finite
    name: str  # the first such loss
    value: float


class EpochMeter:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums: dict[str, torch.Tensor | float] = {}  # metrics beside the losses, e.g. a prior's
        self.loss_names: list[str] = []
        self.loss_sums: torch.Tensor | None = None  # one entry per loss name, in that order
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0  # batch sizes are known on the host
        self.finite = torch.ones((), dtype=torch.bool, device=device)  # every loss so far was finite
        self._bad_step = torch.zeros((), dtype=torch.int64, device=device)  # the first step that was not ...
        self._bad_values: torch.Tensor | None = None  # ... and its losses

    def add_losses(self, losses: dict[str, torch.Tensor], step: int, batch: int) -> None:
        """Add one step's losses (weighted by its batch size) and fold their finiteness into the flag."""
        values = torch.stack([v.detach().reshape(()).to(self.dtype) for v in losses.values()])
        if self.loss_sums is None:
            self.loss_names = list(losses)
            self.loss_sums = torch.zeros_like(values)
            self._bad_values = torch.zeros_like(values)
            self.first_values = values  # the losses of the weights the epoch started from
        newly = self.finite & ~torch.isfinite(values).all()
        self._bad_step = torch.where(newly, step, self._bad_step)
        self._bad_values = torch.where(newly, values, self._bad_values)
        self.finite = self.finite & ~newly
        self.loss_sums = self.loss_sums + values * batch

    def add(self, metrics: dict[str, torch.Tensor | float], batch: int) -> None:
        """Add named values (device tensors or Python floats, e.g. a prior's metrics) weighted by batch."""
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().reshape(()).to(self.dtype) * batch
            else:
                value = float(value) * batch
            previous = self.sums.get(key)
            self.sums[key] = value if previous is None else previous + value

    def add_correct(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.correct += (logits.argmax(1) == labels).sum()
        self.seen += len(labels)

    def divergence(self) -> Divergence | None:
        """The first step whose losses were not finite, or None (reads one flag back from the device)."""
        if bool(self.finite):
            return None
        values = self._bad_values.tolist()
        index = next(i for i, v in enumerate(values) if not math.isfinite(v))
        return Divergence(int(self._bad_step), self.loss_names[index], values[index])

    def first_loss(self, name: str) -> float:
        """Loss `name` at the epoch's first step: how the weights it started from (the last checkpoint's,
        when one was written after the previous epoch) fared on a batch. NaN if no step ran."""
        if self.loss_sums is None:
            return math.nan
        return float(self.first_values[self.loss_names.index(name)])

    def read(self) -> dict[str, float]:
        """Mean of every named value over the images seen, and `train_acc`: one read from the device."""
        on_device = [k for k, v in self.sums.items() if isinstance(v, torch.Tensor)]
        parts = [self.loss_sums] if self.loss_sums is not None else []
        parts += [torch.stack([self.sums[k] for k in on_device] + [self.correct.to(self.dtype)])]
        values = torch.cat(parts).tolist()
        read = dict(zip(self.loss_names + on_device, values[:-1]))
        row = {k: v / self.seen for k, v in read.items() if k in self.loss_names}
        row.update({k: (read[k] if k in read else v) / self.seen for k, v in self.sums.items()})
        row["train_acc"] = int(values[-1]) / self.seen
        return row
