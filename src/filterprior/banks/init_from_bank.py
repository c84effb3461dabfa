"""Initialise conv layers with filters from a bank (optionally freezing them).

Two modes. `sample` draws each layer's kernels at random from the bank, mixing source networks: a
prior over single kernels. `network` copies one source network's whole filters, in order, into every
layer it covers: layer 2's filters expect layer 1's channels in the order that network produced them,
so only whole networks keep the layers working together (this is transfer of its conv features).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from filterprior.banks.bank import FilterBank
from filterprior.banks.freeze import freeze_conv, freeze_norm
from filterprior.banks.locate import init_bank_file, load_prior_bank
from filterprior.config import TrainConfig, effective_config
from filterprior.errors import UserError
from filterprior.models.introspect import conv_layers, norms_after_convs, select_layers

INIT_MODES = ("sample", "network")
FREEZE_CHOICES = ("none", "first", "all")


def init_from_bank(
    model: nn.Module,
    bank: FilterBank,
    layers: Sequence[str],
    generator: torch.Generator | None = None,
    freeze: str = "none",
    mode: str = "sample",
) -> dict[str, str]:
    """Fill each selected conv layer (no names: the first) with bank filters; returns {layer: source}.

    `sample` mode: whole filters when the bank has a layer with the same (in, kh, kw), else 2-D slices
    with the same (kh, kw); each layer is then rescaled as a whole so its weight std equals the std of
    its current weights (call this on a freshly built model: that is its default init), keeping the
    bank's relative kernel scales but the activation scale the rest of the network was built for.
    `network` mode (see the module's docstring): no layer names mean every conv layer of the model,
    each of which the bank must hold by name (a first-layer bank would fill layer 0 alone and leave the
    rest at random, so it is refused; name layers in `layers` to copy only those); the network is
    drawn with `generator`; the BatchNorm after each conv is filled too when the bank holds it.
    `freeze` (none | first | all) stops gradients to the first / every filled conv, and a BatchNorm
    filled from the bank is frozen with it (FrozenBatchNorm2d: the source's statistics).
    """
    if freeze not in FREEZE_CHOICES:
        raise UserError(f"init.freeze: {freeze!r} is not a choice; expected one of {', '.join(FREEZE_CHOICES)}")
    if mode not in INIT_MODES:
        raise UserError(f"init.mode: {mode!r} is not an init mode; expected one of {', '.join(INIT_MODES)}")
    copied_norms: dict[str, nn.Module] = {}  # layer -> its BatchNorm, filled from the bank with its filters
    if mode == "network":
        networks = _network_count(bank)
        chosen = _network_layers(model, bank, layers)
        source = int(torch.randint(networks, (1,), generator=generator))
        norms = _affine_norms(model)
        filled = {}
        for name, conv in chosen:
            filled[name], norm = _copy_network_layer(bank, name, conv, norms.get(name), networks, source)
            if norm is not None:
                copied_norms[name] = norm
    else:
        chosen = select_layers(model, layers)
        filled = {name: _fill_sampled_layer(bank, name, conv, generator) for name, conv in chosen}
    for name, conv in chosen[: {"none": 0, "first": 1, "all": len(chosen)}[freeze]]:
        freeze_conv(conv)
        if name in copied_norms:  # the source's BatchNorm goes with its filters
            freeze_norm(model, copied_norms[name])
    return filled


def _fill_sampled_layer(bank: FilterBank, name: str, conv: nn.Conv2d, generator: torch.Generator | None) -> str:
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
    return f"{view}s of bank layer {bank_layer}"


def _copy_network_layer(
    bank: FilterBank, name: str, conv: nn.Conv2d, norm: nn.Module | None, networks: int, source: int
) -> tuple[str, nn.Module | None]:
    """The source network's own filters (unscaled: its BatchNorm statistics belong to that scale), and
    its BatchNorm into `norm` when the bank holds one; returns the description and the norm filled."""
    shape = tuple(conv.weight.shape)
    bank_layer = bank.match_layer(name, shape, "filter")
    held = bank.filters(bank_layer).shape[0]
    if held != networks * shape[0]:
        raise UserError(
            f"init.mode=network: bank layer {bank_layer!r} holds {held} filters, not "
            f"{networks} networks x {shape[0]} (the model's layer); use a bank collected from this architecture"
        )
    part = slice(source * shape[0], (source + 1) * shape[0])
    with_norm = norm is not None and bank_layer in bank.norms
    with torch.no_grad():
        conv.weight.copy_(bank.filters(bank_layer)[part].to(conv.weight))
        for key, value in (bank.norms[bank_layer].items() if with_norm else ()):
            getattr(norm, key).copy_(value[part].to(getattr(norm, key)))
    description = f"filters of bank layer {bank_layer}, network {source}" + (" with its BatchNorm" if with_norm else "")
    return description, norm if with_norm else None


def apply_init_from_bank(
    cfg: TrainConfig, model: nn.Module, generator: torch.Generator | None = None, bank: FilterBank | None = None
) -> dict[str, str]:
    """What the engine calls after building the model: honours init.from_bank / mode / layers / freeze.
    Without `bank`, reads init.bank, else prior.bank, else the bank bundled for cfg.model.name."""
    init = cfg.init
    if not init.from_bank:
        if init.freeze != "none":
            raise UserError("init.freeze: only works with init.from_bank=true (it freezes bank-initialised layers)")
        return {}
    if bank is None:
        bank = load_prior_bank(cfg.prior, cfg.model.name, init_bank_file(cfg), what="init.from_bank")
    layers = init.layers or (effective_config(cfg.prior).layers if init.mode == "sample" else [])
    return init_from_bank(model, bank, layers, generator, freeze=init.freeze, mode=init.mode)


def _network_layers(model: nn.Module, bank: FilterBank, layers: Sequence[str]) -> list[tuple[str, nn.Conv2d]]:
    """The layers given by name, else every conv layer of the model, each of which the bank must hold."""
    if layers:
        return select_layers(model, layers)
    convs = conv_layers(model)
    for name, conv in convs:  # a bank of another architecture is named as such first (shapes differ)
        if name in bank.layers:
            bank.match_layer(name, tuple(conv.weight.shape), "filter")
    missing = [name for name, _ in convs if name not in bank.layers]
    if missing:
        held = [name for name, _ in convs if name in bank.layers]
        source_model = f" (of {bank.metadata['model']})" if bank.metadata.get("model") else ""
        raise UserError(
            f"init.mode=network copies a whole source network, but {bank.describe_source()}{source_model} holds "
            f"{'only the layers ' + ', '.join(held) if held else 'none of the layers'} of the model's conv "
            f"layers {', '.join(name for name, _ in convs)} (bank layers: {', '.join(bank.layer_names)}); "
            "network mode needs a whole-network bank (`filterprior collect` without --layers, e.g. the "
            "bundled <model>-cifar100-networks banks), or set init.layers to the layers to copy"
        )
    return convs


def _network_count(bank: FilterBank) -> int:
    networks = bank.metadata.get("networks")
    if not isinstance(networks, int) or networks < 1:
        raise UserError(
            "init.mode=network: the bank does not record how many networks it was built from "
            "(metadata 'networks'); rebuild it with `filterprior collect`"
        )
    return networks


def _affine_norms(model: nn.Module) -> dict[str, nn.Module]:
    """conv name -> the BatchNorm after it, when that BatchNorm has every tensor a bank entry fills."""
    return {
        name: bn for name, bn in norms_after_convs(model).items()
        if bn.affine and bn.track_running_stats
    }


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
