"""The loss-term interface the engine sees, the prior registry, and the helpers every prior shares."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from filterprior.config import PriorConfig, check_ranges
from filterprior.errors import UserError
from filterprior.priors.bank import FilterBank, default_bank_path, load_bank
from filterprior.priors.views import (
    NORMALIZATIONS,
    VIEWS,
    kernel_view,
    normalize_kernels,
    select_layers,
    unwrap_model,
)

_PRIORS: dict[str, type["LossTerm"]] = {}


def warmup_factor(progress: float, warmup_epochs: float) -> float:
    """Linear ramp from 0 at progress 0 to 1 at `warmup_epochs` (1 throughout when there is no warm-up)."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, max(0.0, progress / warmup_epochs))


def effective_config(cfg: PriorConfig) -> PriorConfig:
    """The config a prior really runs with: `seed_faithful` forces the seed project's choices.

    The seed used the first conv layer, raw 2-D slices, BCE and its conv discriminator without spectral
    norm; its lambda was 1, which is our default, but `weight` is still taken from the config.
    """
    if not cfg.seed_faithful:
        return cfg
    return dataclasses.replace(
        cfg, layers=[], normalize="none", view="slice", loss="bce", d_arch="conv", spectral_norm=False
    )


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
        plain = unwrap_model(model)
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
        weight = unwrap_model(model).get_submodule(layer).weight
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


def list_priors() -> list[str]:
    import filterprior.priors  # noqa: F401  (importing the package registers every prior)

    return ["none", *sorted(_PRIORS)]


def create_prior(
    cfg: PriorConfig, model: nn.Module, device: torch.device | str, bank: FilterBank | None = None
) -> LossTerm | None:
    """The configured prior as a loss term (None for `none`); loads the bank when the prior needs one."""
    names = list_priors()
    if cfg.name == "none":
        return None
    if cfg.name not in _PRIORS:
        raise UserError(f"prior.name: {cfg.name!r} is not a prior; expected one of {', '.join(names)}")
    cls = _PRIORS[cfg.name]
    if cls.needs_bank and bank is None:
        bank = load_prior_bank(cfg, model)
    return cls(cfg, model, device, bank)


def load_prior_bank(cfg: PriorConfig, model: nn.Module) -> FilterBank:
    """`prior.bank` if set, else the bank bundled for the model (named by `model.filterprior_name`);
    init_mode=network takes the bundled bank of whole networks, the learned priors the first-layer one."""
    model_name = getattr(unwrap_model(model), "filterprior_name", None)
    path = bank_file(cfg, model_name)
    if path is None:
        raise UserError(
            f"{'prior ' + repr(cfg.name) if cfg.name != 'none' else 'prior.init_from_bank'} needs a filter bank, and none is bundled for model {model_name!r}: build one "
            "from networks trained on plenty of data with `filterprior collect` and set prior.bank=<that file>"
        )
    return load_bank(path)


def uses_bank(cfg: PriorConfig) -> bool:
    """Whether a run with this prior config reads a filter bank."""
    return cfg.init_from_bank or (cfg.name in _PRIORS and _PRIORS[cfg.name].needs_bank)


def bank_file(cfg: PriorConfig, model_name: str | None) -> Path | None:
    """The bank file such a run reads: `prior.bank`, else the one bundled for the model (None if none is)."""
    if cfg.bank:
        return Path(cfg.bank)
    return default_bank_path(model_name, networks=cfg.init_from_bank and cfg.init_mode == "network")


# ---------------------------------------------------------------------------------- validation


def _validate_common(cfg: PriorConfig) -> None:
    check_ranges(cfg, "prior.")  # weight, warm-up, kernels per step, D's lr/steps/betas, MMD bandwidths
    if cfg.view not in VIEWS:
        raise UserError(f"prior.view: {cfg.view!r} is not a kernel view; expected one of {', '.join(VIEWS)}")
    if cfg.normalize not in NORMALIZATIONS:
        raise UserError(
            f"prior.normalize: {cfg.normalize!r} is not a normalisation; expected one of {', '.join(NORMALIZATIONS)}"
        )
