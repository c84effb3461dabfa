"""An epoch's losses, metrics and accuracy kept on the device, so that a training step never waits for it.

On a GPU, `.item()` or `if not torch.isfinite(loss)` makes the host wait until the device has caught up;
twenty of them a step leave the GPU idle between kernels. The meter writes each step's losses into a row
of a preallocated device tensor and adds up correct predictions there; the engine reads it all back once
(`read`, `divergence`) at the end of an epoch or every few hundred steps, and acts on a divergence there:
the first row with a loss that is not finite names the step, the loss and its value.

The epoch's means are summed on the host from the rows read back, `sum += loss * batch` in Python floats,
the same arithmetic as the `.item()` loop before it, so metrics.csv keeps its numbers to the last digit.
Rows are float64 (float32 on MPS, which has none): a float32 loss is stored exactly.
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
    def __init__(self, device: torch.device, steps: int = 1) -> None:
        self.device = device
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.capacity = max(1, steps)
        self.rows: torch.Tensor | None = None  # steps x losses, one row a step
        self.loss_names: list[str] = []
        self.batches: list[int] = []  # batch sizes are known on the host
        self.first_step = 0
        self.sums: dict[str, torch.Tensor | float] = {}  # metrics beside the losses, e.g. a prior's
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0
        self._read: list[list[float]] | None = None

    def add_losses(self, losses: dict[str, torch.Tensor], step: int, batch: int) -> None:
        """Record one step's losses (two device ops, no read)."""
        if self.rows is None:
            self.loss_names, self.first_step = list(losses), step
            self.rows = torch.empty((self.capacity, len(losses)), dtype=self.dtype, device=self.device)
        n = len(self.batches)
        if n == len(self.rows):  # more steps than announced
            self.rows = torch.cat([self.rows, torch.empty_like(self.rows)])
        with torch.no_grad():
            self.rows[n] = torch.stack(list(losses.values()))
        self.batches.append(batch)
        self._read = None

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

    def _rows(self) -> list[list[float]]:
        if self._read is None:
            self._read = self.rows[:len(self.batches)].tolist() if self.rows is not None else []
        return self._read

    def divergence(self) -> Divergence | None:
        """The first step whose losses were not finite, or None (one read from the device)."""
        for i, row in enumerate(self._rows()):
            for name, value in zip(self.loss_names, row):
                if not math.isfinite(value):
                    return Divergence(self.first_step + i, name, value)
        return None

    def first_loss(self, name: str) -> float:
        """Loss `name` at the epoch's first step: how the weights it started from (the last checkpoint's,
        when one was written after the previous epoch) fared on a batch. NaN if no step ran."""
        rows = self._rows()
        return rows[0][self.loss_names.index(name)] if rows else math.nan

    def read(self) -> dict[str, float]:
        """Mean of every named value over the images seen, and `train_acc`."""
        sums = dict.fromkeys(self.loss_names, 0.0)
        for row, batch in zip(self._rows(), self.batches):
            for name, value in zip(self.loss_names, row):
                sums[name] += value * batch
        on_device = [k for k, v in self.sums.items() if isinstance(v, torch.Tensor)]
        values = torch.stack([self.sums[k] for k in on_device] + [self.correct.to(self.dtype)]).tolist()
        read = dict(zip(on_device, values[:-1]))
        row = {k: v / self.seen for k, v in sums.items()}
        row.update({k: (read[k] if k in read else v) / self.seen for k, v in self.sums.items()})
        row["train_acc"] = int(values[-1]) / self.seen
        return row
