"""The quick training config the engine tests share (the embedded mini CIFAR-10 set, a small model, one
thread, no progress bar), and how they compare two runs that should differ only by float rounding."""

from __future__ import annotations

import torch

from filterprior.config import TrainConfig, apply_overrides

QUICK = ["data.dataset=mini", "model.name=mynet-small", "batch_size=16", "threads=1", "progress=false"]


def quick_config(*extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), QUICK + list(extra))


def assert_trained_alike(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], rel: float) -> None:
    """Each float tensor of state dict `b` within `rel` of `a`'s, in norm: ||a - b|| <= rel * ||a||.

    A norm, not an elementwise bound: one epoch amplifies rounding most in the few elements of the smallest
    tensors (BatchNorm biases, a few thousandths after one epoch), and by how much depends on the CPU's
    kernels. Seen on an AMD EPYC (2026-12-03): channels-last up to 5.4 % (a BatchNorm bias), compiled 0.9 %,
    where an elementwise 1e-4 and a max-relative 2 % had held on the earlier machines. A wrong layout or a
    step trained differently is off by the size of the tensor itself.
    """
    assert a.keys() == b.keys()
    for key, x in a.items():
        if x.is_floating_point():
            distance, size = float((x - b[key]).norm()), float(x.norm())
            assert distance <= rel * size + 1e-6, f"{key}: ||a - b|| = {distance:.3g} > {rel} * ||a|| = {rel * size:.3g}"
