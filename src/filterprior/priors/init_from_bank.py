"""Initialise conv layers with filters drawn from a bank (optionally freezing the first one)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from filterprior.config import PriorConfig
from filterprior.errors import UserError
from filterprior.priors.bank import FilterBank
from filterprior.priors.base import effective_config, load_prior_bank
from filterprior.priors.views import select_layers


def init_from_bank(
    model: nn.Module,
    bank: FilterBank,
    layers: Sequence[str],
    generator: torch.Generator | None = None,
    freeze_first: bool = False,
) -> dict[str, str]:
    """Fill each selected conv layer (no names: the first) with bank filters; returns {layer: source}.

    Whole filters are used when the bank has a layer with the same (in, kh, kw), else 2-D slices with the
    same (kh, kw). Each layer is then rescaled as a whole so its weight std equals the std of its current
    weights (call this on a freshly built model: that is its default init), keeping the bank's relative
    kernel scales but the activation scale the rest of the network was initialised for.
    `freeze_first` stops gradients to the first filled layer's weight and bias.
    """
    filled = {}
    chosen = select_layers(model, layers)
    for name, conv in chosen:
        shape = tuple(conv.weight.shape)
        bank_layer, view = _bank_source(bank, name, shape)
        count = shape[0] if view == "filter" else shape[0] * shape[1]
        sampled = bank.sample(bank_layer, count, view, generator).reshape(shape).float()
        with torch.no_grad():
            target_std = float(conv.weight.float().std())
            if not math.isfinite(target_std) or target_std == 0:  # degenerate init: kaiming normal (fan_in)
                target_std = math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
            scale = target_std / float(sampled.std()) if float(sampled.std()) > 0 else 1.0
            conv.weight.copy_((sampled * scale).to(conv.weight))
        filled[name] = f"{view}s of bank layer {bank_layer}"
    if freeze_first:
        first = chosen[0][1]
        for p in first.parameters(recurse=False):
            p.requires_grad_(False)
    return filled


def apply_init_from_bank(
    cfg: PriorConfig, model: nn.Module, generator: torch.Generator | None = None, bank: FilterBank | None = None
) -> dict[str, str]:
    """What the engine calls after building the model: honours prior.init_from_bank / freeze_first."""
    if not cfg.init_from_bank:
        if cfg.freeze_first:
            raise UserError(
                "prior.freeze_first: only works with prior.init_from_bank=true (it freezes the bank-initialised layer)"
            )
        return {}
    bank = bank if bank is not None else load_prior_bank(cfg, model)
    return init_from_bank(model, bank, effective_config(cfg).layers, generator, freeze_first=cfg.freeze_first)


def _bank_source(bank: FilterBank, name: str, shape: tuple[int, ...]) -> tuple[str, str]:
    for view in ("filter", "slice"):
        try:
            return bank.match_layer(name, shape, view), view
        except UserError:
            continue
    raise UserError(
        f"init_from_bank: conv layer {name!r} has weight shape {shape}, and no bank layer has filters of shape "
        f"{shape[1:]} or kernels of size {shape[2:]}; bank layers: "
        + ", ".join(f"{n} {tuple(bank.filters(n).shape[1:])}" for n in bank.layer_names)
    )
