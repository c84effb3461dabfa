"""Kernel views: how a conv weight is seen by a prior (2-D slices or whole filters), and normalisation."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from filterprior.errors import UserError

VIEWS = ("slice", "filter")
NORMALIZATIONS = ("unit", "none")


def kernel_slices(weight: torch.Tensor) -> torch.Tensor:
    """(out, in, kh, kw) -> (out*in, kh, kw): every 2-D (out, in) slice as its own kernel."""
    _check_conv_weight(weight)
    return weight.reshape(-1, weight.shape[-2], weight.shape[-1])


def whole_filters(weight: torch.Tensor) -> torch.Tensor:
    """(out, in, kh, kw) -> (out, in, kh, kw): each output filter as one sample."""
    _check_conv_weight(weight)
    return weight


def kernel_view(weight: torch.Tensor, view: str) -> torch.Tensor:
    if view == "slice":
        return kernel_slices(weight)
    if view == "filter":
        return whole_filters(weight)
    raise UserError(f"prior.view: {view!r} is not a kernel view; expected one of {', '.join(VIEWS)}")


def normalize_kernels(kernels: torch.Tensor, mode: str, eps: float = 1e-5) -> torch.Tensor:
    """Per kernel (everything after dim 0): `unit` subtracts the mean and divides by the L2 norm + eps.

    BatchNorm after a conv makes the classifier blind to a kernel's scale, so a prior that compares raw
    kernels would judge something the classifier does not care about; `unit` removes scale and offset.
    """
    if mode == "none":
        return kernels
    if mode != "unit":
        raise UserError(
            f"prior.normalize: {mode!r} is not a normalisation; expected one of {', '.join(NORMALIZATIONS)}"
        )
    dims = tuple(range(1, kernels.dim()))
    centred = kernels - kernels.mean(dim=dims, keepdim=True)
    norm = centred.pow(2).sum(dim=dims, keepdim=True).sqrt()
    return centred / (norm + eps)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under DDP (`.module`) or torch.compile (`._orig_mod`) wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's conv layers in module order (the models registry's helper when it exists)."""
    model = unwrap_model(model)
    try:
        from filterprior.models import conv_layers as registry_conv_layers
    except ImportError:  # the models package may be absent or older: same rule, done here
        registry_conv_layers = None
    if registry_conv_layers is not None:
        return list(registry_conv_layers(model))
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def norms_after_convs(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """Each conv layer's BatchNorm: the first BatchNorm2d after it (module order) before the next conv,
    with as many features as the conv has output channels."""
    found: dict[str, nn.BatchNorm2d] = {}
    current: tuple[str, nn.Conv2d] | None = None
    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, nn.Conv2d):
            current = (name, module)
        elif isinstance(module, nn.BatchNorm2d) and current is not None:
            if module.num_features == current[1].out_channels:
                found[current[0]] = module
            current = None
    return found


ALL_LAYERS = "all"  # prior.layers=[all]: every conv layer of the model


def select_layers(model: nn.Module, names: Sequence[str]) -> list[tuple[str, nn.Conv2d]]:
    """The named conv layers (in the order given); no names -> the first conv layer; ["all"] -> every one."""
    layers = conv_layers(model)
    if not layers:
        raise UserError(f"prior.layers: model {type(unwrap_model(model)).__name__} has no conv layers")
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


def _check_conv_weight(weight: torch.Tensor) -> None:
    if weight.dim() != 4:
        raise ValueError(f"expected a conv weight (out, in, kh, kw), got shape {tuple(weight.shape)}")
