"""Looking inside a model: the plain module under wrappers, its conv layers, the BatchNorm after each,
and choosing conv layers by name (what priors and bank initialisation act on)."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from filterprior.errors import UserError

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
ALL_LAYERS = "all"  # prior.layers=[all]: every conv layer of the model


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP (`.module`) or torch.compile (`._orig_mod`) wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def strip_wrapper_prefixes(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict's keys as the plain module has them (a wrapped model's keys carry its prefixes)."""
    out = {}
    for key, value in sd.items():
        for prefix in WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every Conv2d with its `named_modules` name (wrappers removed), in module (registration) order."""
    return [(name, module) for name, module in unwrap(model).named_modules() if isinstance(module, nn.Conv2d)]


def norms_after_convs(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """Each conv layer's BatchNorm: the first BatchNorm2d after it (module order) before the next conv,
    with as many features as the conv has output channels."""
    found: dict[str, nn.BatchNorm2d] = {}
    current: tuple[str, nn.Conv2d] | None = None
    for name, module in unwrap(model).named_modules():
        if isinstance(module, nn.Conv2d):
            current = (name, module)
        elif isinstance(module, nn.BatchNorm2d) and current is not None:
            if module.num_features == current[1].out_channels:
                found[current[0]] = module
            current = None
    return found


def select_layers(model: nn.Module, names: Sequence[str]) -> list[tuple[str, nn.Conv2d]]:
    """The named conv layers (in the order given); no names -> the first conv layer; ["all"] -> every one."""
    layers = conv_layers(model)
    if not layers:
        raise UserError(f"prior.layers: model {type(unwrap(model)).__name__} has no conv layers")
    if not names:
        return [layers[0]]
    if list(names) == [ALL_LAYERS]:
        return layers
    by_name = dict(layers)
    chosen = []
    for name in names:
        if name not in by_name:
            raise UserError(
                f"prior.layers: {name!r} is not a conv layer of this model; its conv layers are: "
                + ", ".join(n for n, _ in layers) + f" (or [{ALL_LAYERS}] alone for every one)"
            )
        if name not in (n for n, _ in chosen):
            chosen.append((name, by_name[name]))
    return chosen
