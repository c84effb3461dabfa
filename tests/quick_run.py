"""The quick training config the engine tests share: the embedded mini CIFAR-10 set, a small model, one
thread, no progress bar."""

from __future__ import annotations

from filterprior.config import TrainConfig, apply_overrides

QUICK = ["data.dataset=mini", "model.name=mynet-small", "batch_size=16", "threads=1", "progress=false"]


def quick_config(*extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), QUICK + list(extra))
