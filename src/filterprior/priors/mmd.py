"""MMD prior: squared maximum mean discrepancy between a random batch of the model's kernels and bank
samples, with a sum of Gaussian RBF kernels. No discriminator to train, so nothing can oscillate."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from filterprior.config import PriorConfig
from filterprior.errors import UserError
from filterprior.banks.bank import FilterBank
from filterprior.priors.base import LossTerm, register_prior

MEDIAN_SAMPLES = 1024  # bank kernels used to measure the median pairwise distance


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """(n, d), (m, d) -> (n, m); written out rather than cdist so the gradient at distance 0 is finite."""
    d2 = x.pow(2).sum(1)[:, None] + y.pow(2).sum(1)[None, :] - 2 * x @ y.T
    return d2.clamp_min(0)


def median_distance(x: Tensor) -> float:
    """Median pairwise Euclidean distance between the rows of x (distinct pairs only)."""
    d2 = squared_distances(x, x)
    upper = torch.triu_indices(x.shape[0], x.shape[0], offset=1, device=x.device)
    return float(d2[upper[0], upper[1]].sqrt().median())


def mmd2(x: Tensor, y: Tensor, scales: Sequence[float]) -> Tensor:
    """Unbiased estimate of MMD² between samples x (n, d) and y (m, d); k = Σ_s exp(-‖a-b‖² / 2s²).

    Unbiased (self-pairs left out) so it is centred on 0 when both samples come from one distribution;
    it can therefore dip slightly below 0.
    """
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("mmd2 needs at least two samples on each side")

    def k(a: Tensor, b: Tensor) -> Tensor:
        d2 = squared_distances(a, b)
        return sum(torch.exp(-d2 / (2 * s * s)) for s in scales)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return xx + yy - 2 * kxy.mean()


@register_prior("mmd")
class MMDPrior(LossTerm):
    """`prior.mmd.bandwidths` are multiples of the median pairwise distance among the layer's (normalised) bank
    kernels, measured once: the same numbers then suit unit-normalised slices, raw kernels and whole
    filters of any size, and, being fixed, the loss does not change shape from step to step."""

    needs_bank = True

    def __init__(self, cfg: PriorConfig, model: nn.Module, device: torch.device | str, bank: FilterBank | None = None):
        super().__init__(cfg, model, device, bank)
        self.bank_layers, self.pools = self.bank_pools(model)
        self.scales: dict[str, list[float]] = {}  # python numbers, measured once: no read-back per step
        for layer in self.layers:
            sample = self.bank_kernels(layer, MEDIAN_SAMPLES).flatten(1)
            median = median_distance(sample)
            if median <= 0:
                raise UserError(
                    f"filter bank layer {self.bank_layers[layer]!r}: its kernels are all the same; MMD needs spread"
                )
            self.scales[layer] = [b * median for b in self.cfg.mmd.bandwidths]

    def layer_losses(self, model: nn.Module) -> dict[str, Tensor]:
        out = {}
        n = self.cfg.kernels_per_step
        for layer, weight in self.weights(model).items():
            fake = self.model_kernels(weight, n).flatten(1)
            real = self.bank_kernels(layer, n).flatten(1)
            out[layer] = mmd2(fake, real, self.scales[layer])
            self._metrics[f"mmd/{layer}"] = out[layer].detach()
        return out
