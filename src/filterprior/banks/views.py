"""Kernel views: how a conv weight is seen by a prior or a bank (2-D slices or whole filters), and normalisation."""

from __future__ import annotations

import torch

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


def _check_conv_weight(weight: torch.Tensor) -> None:
    if weight.dim() != 4:
        raise ValueError(f"expected a conv weight (out, in, kh, kw), got shape {tuple(weight.shape)}")
