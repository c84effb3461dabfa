"""Mixed precision, compilation and determinism switches of a run (config keys `amp`, `compile`,
`deterministic`).

`amp` autocasts the model's forward pass only: the loss is taken on float32 logits and the priors'
losses and updates run outside autocast, in float32 (their statistics of filters are small numbers of
large sums). fp16 needs a gradient scaler (its range is narrow; bf16 has float32's range and needs none);
the scaler's `step` reads a found-inf flag back from the device each step, so fp16 steps are not
sync-free, bf16 steps are. Evaluation stays float32.
"""

from __future__ import annotations

import contextlib
import os

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def configure_kernels(deterministic: bool) -> None:
    """Deterministic kernels (and the cuBLAS workspace they need), or cuDNN's autotuner when not."""
    if deterministic:
        # cuBLAS reads it when its first handle is made; a value set by the user is kept
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def autocast(amp: str, device: torch.device):
    """The context the forward pass runs in: autocast to bf16/fp16 on the device's type, or nothing."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler | None:
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None


def compiled(model: torch.nn.Module, on: bool) -> torch.nn.Module:
    """torch.compile's wrapper around the model (unwrap gives the plain module back), or the model."""
    return torch.compile(model) if on else model
