"""Optimisers and learning-rate schedules built from OptimConfig."""

from __future__ import annotations

import math

import torch
from torch import nn

from filterprior.config import OptimConfig
from filterprior.errors import UserError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")


def param_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Weight decay only on tensors with dim >= 2 (kernels, matrices), not on biases or norms (nanoGPT);
    `decay_all` decays every parameter (what older scripts, like the seed projects', did)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_all:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.decay_all)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    raise UserError(f"optim.name {cfg.name!r} is not known; expected one of {', '.join(OPTIMIZERS)}")


def lr_factor(cfg: OptimConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based)."""
    if cfg.schedule == "onecycle":
        # Smith's one-cycle without momentum cycling: linear ramp from lr/25 over the first 25% of
        # steps, then cosine annealing to ~0.
        peak = max(1, int(0.25 * total_steps))
        if step < peak:
            return 1 / 25 + (1 - 1 / 25) * step / peak
        t = (step - peak) / max(1, total_steps - peak)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // max(1, cfg.step_epochs))
    if cfg.schedule == "cosine":
        t = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    raise UserError(f"optim.schedule {cfg.schedule!r} is not known; expected one of {', '.join(SCHEDULES)}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR; the lambda is a plain function, so its state_dict holds only counters."""
    lr_factor(cfg, 0, steps_per_epoch, total_steps)  # validates the schedule name early
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch, total_steps)
    )
