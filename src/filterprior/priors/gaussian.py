"""Gaussian prior (after Feinman & Lake's smooth-kernel prior): fit a mean and covariance to the bank's
normalised kernels per layer, then penalise the model kernels' negative log-likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from filterprior.config import PriorConfig
from filterprior.banks.bank import FilterBank
from filterprior.priors.base import LayerTensors, LossTerm, register_prior

JITTER = 1e-6  # times the mean variance: keeps Cholesky well defined even when shrinkage comes out 0


@dataclass
class GaussianFit:
    mean: Tensor  # (d,)
    whitener: Tensor  # (d, d): inverse Cholesky factor, so z = W (x - mean) is standard normal
    log_det: float  # log det of the covariance
    shrinkage: float  # Ledoit-Wolf intensity in [0, 1]

    def mahalanobis(self, x: Tensor) -> Tensor:
        """Half the squared Mahalanobis distance of each row of x (n, d)."""
        z = (x - self.mean) @ self.whitener.T
        return 0.5 * z.pow(2).sum(dim=1)

    def nll(self, x: Tensor) -> Tensor:
        d = self.mean.shape[0]
        return self.mahalanobis(x) + 0.5 * self.log_det + 0.5 * d * math.log(2 * math.pi)


def fit_gaussian(samples: Tensor) -> GaussianFit:
    """Mean and Ledoit-Wolf shrunk covariance of (n, d) samples, in float64 for a stable factorisation.

    Shrinkage towards a scaled identity with the analytic Ledoit-Wolf intensity: no knob to tune, and it
    keeps the covariance invertible when a bank has fewer kernels than dimensions (whole filters of deep
    layers) or a direction with no variance (unit-normalised kernels are all zero-mean).
    """
    x = samples.detach().to(torch.float64)
    n, d = x.shape
    mean = x.mean(dim=0)
    x = x - mean
    cov = x.T @ x / n
    mu = torch.trace(cov) / d
    x2 = x.pow(2)
    beta_sum = (x2.T @ x2).sum() / n - cov.pow(2).sum()  # sum of the entries' sampling variances
    delta = (cov - mu * torch.eye(d, dtype=x.dtype)).pow(2).sum()  # distance of cov from the target
    beta = min(float(beta_sum) / n, float(delta))
    shrinkage = 0.0 if float(delta) == 0 else beta / float(delta)
    cov = (1 - shrinkage) * cov + (shrinkage + JITTER) * mu * torch.eye(d, dtype=x.dtype)
    chol = torch.linalg.cholesky(cov)
    whitener = torch.linalg.solve_triangular(chol, torch.eye(d, dtype=x.dtype), upper=False)
    log_det = 2 * torch.log(torch.diagonal(chol)).sum()
    return GaussianFit(mean.float(), whitener.float(), float(log_det), shrinkage)


@register_prior("gaussian")
class GaussianPrior(LossTerm):
    """Loss = mean over all the layer's kernels of ½‖W(x - m)‖² / d: the NLL without its constant (so it
    is >= 0) and per dimension, so one λ means the same for 7x7 slices (d=49) and whole 128x5x5 filters
    (d=3200); a kernel typical of the bank scores about 0.5. The full NLL (nats per kernel) is logged as
    `nll/<layer>`."""

    needs_bank = True

    def __init__(self, cfg: PriorConfig, model: nn.Module, device: torch.device | str, bank: FilterBank | None = None):
        super().__init__(cfg, model, device, bank)
        assert self.bank is not None
        means, whiteners, self.log_dets = {}, {}, {}
        for layer in self.layers:
            entry = self.bank.layers[self.bank_layer_for(model, layer)]
            kernels = self.prepare(entry["slices" if self.cfg.view == "slice" else "filters"]).flatten(1)
            fit = fit_gaussian(kernels.cpu())
            means[layer], whiteners[layer] = fit.mean, fit.whitener
            self.log_dets[layer] = fit.log_det
            self._metrics[f"shrinkage/{layer}"] = torch.tensor(fit.shrinkage, device=self.device)
        # fitted from the bank at construction, so not saved: a resumed run fits the same numbers again
        self.means = LayerTensors(means, persistent=False).to(self.device)
        self.whiteners = LayerTensors(whiteners, persistent=False).to(self.device)

    def fit(self, layer: str) -> GaussianFit:
        """The layer's fit, its tensors the module's buffers (on the device)."""
        return GaussianFit(self.means[layer], self.whiteners[layer], self.log_dets[layer], float("nan"))

    def layer_losses(self, model: nn.Module) -> dict[str, Tensor]:
        out = {}
        for layer, weight in self.weights(model).items():
            fit = self.fit(layer)
            x = self.model_kernels(weight).flatten(1)
            half_maha = fit.mahalanobis(x).mean()
            self._metrics[f"nll/{layer}"] = (half_maha + fit.nll(fit.mean[None]).squeeze(0)).detach()
            out[layer] = half_maha / x.shape[1]
        return out
