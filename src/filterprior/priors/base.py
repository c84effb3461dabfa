"""The loss-term interface the engine sees, registering a prior, and the helpers every prior shares."""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from torch import nn

from filterprior.banks.bank import FilterBank
from filterprior.banks.views import NORMALIZATIONS, VIEWS, kernel_view, normalize_kernels
from filterprior.config import PriorConfig, check_ranges, effective_config
from filterprior.errors import UserError
from filterprior.models.introspect import select_layers, unwrap

_PRIORS: dict[str, type["LossTerm"]] = {}


def warmup_factor(progress: float, warmup_epochs: float) -> float:
    """Linear ramp from 0 at progress 0 to 1 at `warmup_epochs` (1 throughout when there is no warm-up)."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, max(0.0, progress / warmup_epochs))


class LossTerm:
    """A prior as the engine sees it: named losses each step, its own update after the optimiser step.

    Subclasses implement `layer_losses(model) -> {layer: unweighted loss}`; `losses` adds λ and warm-up.
    Randomness (which kernels are drawn) comes from one generator seeded from torch's global RNG at
    construction, so a seeded run draws the same kernels, and its state is saved for exact resume.
    """

    name: ClassVar[str] = ""
    needs_bank: ClassVar[bool] = False

    def __init__(self, cfg: PriorConfig, model: nn.Module, device: torch.device | str, bank: FilterBank | None = None):
        cfg = effective_config(cfg)
        _validate_common(cfg)
        self.cfg = cfg
        self.device = torch.device(device)
        self.bank = bank.to(self.device) if bank is not None else None
        self.layers = [name for name, _ in select_layers(model, cfg.layers)]
        self.generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,)).item()))
        self._metrics: dict[str, torch.Tensor | float] = {}

    # ------------------------------------------------------------------ the engine's interface

    def weight_at(self, progress: float) -> float:
        return self.cfg.weight * warmup_factor(progress, self.cfg.warmup_epochs)

    def losses(self, model: nn.Module, progress: float) -> dict[str, torch.Tensor]:
        weight = self.weight_at(progress)
        return {f"prior/{self.name}/{layer}": weight * loss for layer, loss in self.layer_losses(model).items()}

    def after_step(self, model: nn.Module) -> dict[str, float]:
        return self.metrics()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._metrics.items()}

    # ------------------------------------------------------------------ for subclasses

    def layer_losses(self, model: nn.Module) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The selected layers' conv weights, looked up by name in the model passed (wrappers removed)."""
        plain = unwrap(model)
        return {name: plain.get_submodule(name).weight for name in self.layers}

    def prepare(self, kernels: torch.Tensor) -> torch.Tensor:
        """A prior sees kernels in float32, normalised as configured."""
        return normalize_kernels(kernels.float(), self.cfg.normalize)

    def model_kernels(self, weight: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """The layer's kernels in the configured view; a random `n` of them (no repeats) if n is given."""
        kernels = kernel_view(weight, self.cfg.view)
        if n is not None and n < kernels.shape[0]:
            idx = torch.randperm(kernels.shape[0], generator=self.generator)[:n].to(kernels.device)
            kernels = kernels[idx]
        return self.prepare(kernels)

    def bank_kernels(self, bank_layer: str, n: int) -> torch.Tensor:
        assert self.bank is not None
        return self.prepare(self.bank.sample(bank_layer, n, self.cfg.view, self.generator))

    def bank_layer_for(self, model: nn.Module, layer: str) -> str:
        assert self.bank is not None
        weight = unwrap(model).get_submodule(layer).weight
        return self.bank.match_layer(layer, tuple(weight.shape), self.cfg.view)


# ---------------------------------------------------------------------------------- registry


def register_prior(name: str) -> Callable[[type[LossTerm]], type[LossTerm]]:
    def add(cls: type[LossTerm]) -> type[LossTerm]:
        if name in _PRIORS and _PRIORS[name] is not cls:
            raise ValueError(f"prior {name!r} is registered twice")
        cls.name = name
        _PRIORS[name] = cls
        return cls

    return add


def uses_bank(cfg: PriorConfig) -> bool:
    """Whether a run with this prior config reads a filter bank."""
    return cfg.init_from_bank or (cfg.name in _PRIORS and _PRIORS[cfg.name].needs_bank)


# ---------------------------------------------------------------------------------- validation


def _validate_common(cfg: PriorConfig) -> None:
    check_ranges(cfg, "prior.")  # weight, warm-up, kernels per step, D's lr/steps/betas, MMD bandwidths
    if cfg.view not in VIEWS:
        raise UserError(f"prior.view: {cfg.view!r} is not a kernel view; expected one of {', '.join(VIEWS)}")
    if cfg.normalize not in NORMALIZATIONS:
        raise UserError(
            f"prior.normalize: {cfg.normalize!r} is not a normalisation; expected one of {', '.join(NORMALIZATIONS)}"
        )
