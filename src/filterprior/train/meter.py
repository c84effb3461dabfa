"""An epoch's losses, metrics and accuracy kept on the device, so that a training step never waits for it.

On a GPU, `.item()` or `if not torch.isfinite(loss)` makes the host wait until the device has caught up;
twenty of them a step leave the GPU idle between kernels. The meter keeps each step's 0-d loss tensors and
its count of correct predictions as they are (no device work at all); the engine reads them back once
(`read`, `divergence`) at the end of an epoch or every few hundred steps, and acts on a divergence there:
the first row with a loss that is not finite names the step, the loss and its value.

The epoch's means are summed on the host from the rows read back, `sum += loss * batch` in Python floats,
the same arithmetic as the `.item()` loop before it, so metrics.csv keeps its numbers to the last digit.
They are read as float64 (float32 on MPS, which has none): a float32 loss is read exactly.
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
        self.loss_names: list[str] = []
        self.losses: list[torch.Tensor] = []  # each step's losses, detached, in loss_names' order
        self.batches: list[int] = []  # batch sizes are known on the host
        self.first_step = 0
        self.sums: dict[str, torch.Tensor | float] = {}  # metrics beside the losses, e.g. a prior's
        self.correct: list[torch.Tensor] = []  # each step's count of correct predictions
        self.seen = 0
        self._read: list[list[float]] | None = None

    def add_losses(self, losses: dict[str, torch.Tensor], step: int, batch: int) -> None:
        """Keep one step's losses (no device work at all: the 0-d results are kept as they are)."""
        if not self.batches:
            self.loss_names, self.first_step = list(losses), step
        self.losses.extend(v.detach() for v in losses.values())
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
        self.correct.append((logits.argmax(1) == labels).sum())
        self.seen += len(labels)

    def _rows(self) -> list[list[float]]:
        """The losses step by step, read back in one go (float32 losses are exact in float64)."""
        if self._read is None and not self.loss_names:  # no step finished (an error in the first one)
            return []
        if self._read is None:
            flat = torch.stack([v.to(self.dtype) for v in self.losses]).tolist() if self.losses else []
            k = len(self.loss_names)
            self._read = [flat[i:i + k] for i in range(0, len(flat), k)]
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
        correct = torch.stack(self.correct).sum() if self.correct else torch.zeros((), device=self.device)
        values = torch.stack([self.sums[k] for k in on_device] + [correct.to(self.dtype)]).tolist()
        read = dict(zip(on_device, values[:-1]))
        row = {k: v / self.seen for k, v in sums.items()}
        row.update({k: (read[k] if k in read else v) / self.seen for k, v in self.sums.items()})
        row["train_acc"] = int(values[-1]) / self.seen
        return row
