"""Per-epoch logging: metrics.csv (rewritten atomically from the history), TensorBoard, one console line."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from filterprior.utils import atomic_write_text

BASE_COLUMNS = ["epoch", "step", "time_s", "lr", "train_loss", "train_acc", "val_loss", "val_acc"]


def write_metrics_csv(history: list[dict[str, Any]], path: str | Path) -> None:
    columns = [c for c in BASE_COLUMNS if any(c in row for row in history)]
    extra = sorted({k for row in history for k in row} - set(columns))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns + extra, restval="")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}", f"loss {row['train_loss']:.4f}"]
    parts.append(f"acc {100 * row['train_acc']:5.1f}%")
    if "val_acc" in row:
        parts.append(f"val {100 * row['val_acc']:5.1f}%")
    prior = {k: v for k, v in row.items() if k.startswith(("prior/", "d_real/", "d_fake/"))}
    parts.extend(f"{k} {v:.3g}" for k, v in list(prior.items())[:4])
    parts.append(f"lr {row['lr']:.3g}")
    parts.append(f"{row['time_s']:.0f}s")
    if row["epoch"] < epochs:
        parts.append(f"{time_left(row['time_s'], row['epoch'], epochs)} left")
    return "  ".join(parts)


def time_left(seconds: float, epoch: int, epochs: int) -> str:
    """The time the epochs after `epoch` take at the mean pace of the first `epoch` ('~26 min')."""
    minutes = round(seconds / max(1, epoch) * (epochs - epoch) / 60)
    if minutes < 1:
        return "<1 min"
    return f"~{minutes} min" if minutes < 90 else f"~{minutes // 60} h {minutes % 60:02d} min"


class TensorBoardLog:
    """Scalars to TensorBoard; a no-op when log_dir is None (the ranks other than 0 under DDP)."""

    def __init__(self, log_dir: Path | None):
        if log_dir is None:
            self.writer = None
            return
        from torch.utils.tensorboard import SummaryWriter  # a dependency: missing means a broken install

        self.writer = SummaryWriter(str(log_dir))

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
