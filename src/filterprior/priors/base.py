"""The loss-term interface the engine sees, registering a prior, and the helpers every prior shares."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from filterprior.banks.bank import FilterBank
from filterprior.banks.views import NORMALIZATIONS, VIEWS, kernel_view, normalize_kernels
from filterprior.config import PriorConfig, TrainConfig, check_ranges, effective_config
from filterprior.errors import UserError
from filterprior.models.introspect import select_layers, unwrap

_PRIORS: dict[str, type["LossTerm"]] = {}


def warmup_factor(progress: float, warmup_epochs: float) -> float:
    """Linear ramp from 0 at progress 0 to 1 at `warmup_epochs` (1 throughout when there is no warm-up)."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, max(0.0, progress / warmup_epochs))


def module_key(layer: str) -> str:
    """A conv layer's name as a submodule / buffer name ('features.0' -> 'features-0'): torch refuses dots
    there, and conv layer names never hold '-', so no two layers meet."""
    return layer.replace(".", "-")


class LayerTensors(nn.Module):
    """Tensors per conv layer as buffers: `.to()` moves them; `persistent=False` keeps them out of the
    state dict (what is rebuilt from the bank file need not fill every checkpoint)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], persistent: bool):
        super().__init__()
        self.names = list(tensors)
        for layer, tensor in tensors.items():
            self.register_buffer(module_key(layer), tensor, persistent=persistent)

    def __getitem__(self, layer: str) -> torch.Tensor:
        return getattr(self, module_key(layer))

    def items(self) -> list[tuple[str, torch.Tensor]]:
        return [(layer, self[layer]) for layer in self.names]


class LossTerm(nn.Module):
    """A prior as the engine sees it: named losses each step, its own update after the optimiser step.

    Subclasses implement `layer_losses(model) -> {layer: unweighted loss}`; `losses` adds λ and warm-up.
    Randomness (which kernels are drawn) comes from one generator on the prior's device, seeded from
    torch's global RNG at construction, so a seeded run draws the same kernels, and its state is saved for
    exact resume. On the CPU its draws are those of the CPU generator earlier versions drew from on the
    host, so CPU runs are unchanged; on a GPU the indices are drawn there (no copy from the host).

    Metrics are detached tensors on the device (reading them is the caller's choice, once an epoch).
    `state_dict()` holds the module's persistent tensors (discriminators, L2-SP's anchors) plus, as extra
    state, the generator and whatever `extra_state` a subclass adds (D's optimisers); the bank's kernels
    are buffers outside it: they are rebuilt from the bank file, and a checkpoint stays small.
    """

    name: ClassVar[str] = ""
    needs_bank: ClassVar[bool] = False

    def __init__(self, cfg: PriorConfig, model: nn.Module, device: torch.device | str, bank: FilterBank | None = None):
        super().__init__()
        cfg = effective_config(cfg)
        _validate_common(cfg)
        self.cfg = cfg
        self.bank = bank
        self.register_buffer("_device_probe", torch.empty(0, device=device), persistent=False)
        self.layers = [name for name, _ in select_layers(model, cfg.layers)]
        self._seed = int(torch.randint(2**62, (1,)).item())
        self.generator = torch.Generator(self.device).manual_seed(self._seed)
        self._metrics: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self._device_probe.device

    def _apply(self, fn, recurse=True):
        """`.to(device)` moves the buffers and D's parameters (torch's part), and here the generator and
        D's optimiser state. A generator's state cannot cross device types, so a moved prior restarts
        its stream from its seed: move it before its first step, as the engine does by building it there."""
        super()._apply(fn, recurse)
        if self.generator.device != self.device:
            self.generator = torch.Generator(self.device).manual_seed(self._seed)
        for opt in getattr(self, "optimizers", {}).values():
            for state in opt.state.values():
                for key, value in state.items():
                    if key != "step" and isinstance(value, torch.Tensor):  # Adam keeps `step` on the host
                        state[key] = value.to(self.device)
        return self

    # ------------------------------------------------------------------ the engine's interface

    def weight_at(self, progress: float) -> float:
        return self.cfg.weight * warmup_factor(progress, self.cfg.warmup_epochs)

    def losses(self, model: nn.Module, progress: float) -> dict[str, torch.Tensor]:
        weight = self.weight_at(progress)
        return {f"prior/{self.name}/{layer}": weight * loss for layer, loss in self.layer_losses(model).items()}

    def after_step(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return self.metrics()

    def metrics(self) -> dict[str, torch.Tensor]:
        """The latest metrics: detached tensors on the prior's device (no read-back here)."""
        return dict(self._metrics)

    # ------------------------------------------------------------------ checkpoints

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), **self.extra_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        """What a subclass saves beside its tensors (plain containers of tensors and numbers)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True, assign: bool = False):
        if "generator" in state and "_extra_state" not in state:  # written before loss terms were modules
            state = self.from_legacy_state(state)
        return super().load_state_dict(state, strict=strict, assign=assign)

    def from_legacy_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The state dict of the older layout ({'generator': ..., plus a subclass's own keys}) in this one."""
        return {"_extra_state": {"generator": state["generator"]}}

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

    def draw(self, count: int, n: int) -> torch.Tensor:
        """`n` indices into `count` kernels, on the device: without repeats when there are enough (the
        draw `FilterBank.sample` makes, so the kernels drawn are the same)."""
        if n <= count:
            return torch.randperm(count, generator=self.generator, device=self.device)[:n]
        return torch.randint(count, (n,), generator=self.generator, device=self.device)

    def model_kernels(self, weight: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """The layer's kernels in the configured view; a random `n` of them (no repeats) if n is given."""
        kernels = kernel_view(weight, self.cfg.view)
        if n is not None and n < kernels.shape[0]:
            kernels = kernels[self.draw(kernels.shape[0], n)]
        return self.prepare(kernels)

    def bank_pools(self, model: nn.Module) -> tuple[dict[str, str], LayerTensors]:
        """For each selected layer, the bank layer that serves it and that layer's kernels in the
        configured view, as buffers on the device (not saved: they come from the bank file)."""
        assert self.bank is not None
        served = {layer: self.bank_layer_for(model, layer) for layer in self.layers}
        pools = {layer: self.bank.kernels(bank_layer, self.cfg.view).to(self.device)
                 for layer, bank_layer in served.items()}
        return served, LayerTensors(pools, persistent=False)

    def bank_kernels(self, layer: str, n: int) -> torch.Tensor:
        """`n` kernels from the bank's pool for the model's `layer`."""
        pool = self.pools[layer]
        return self.prepare(pool[self.draw(pool.shape[0], n)])

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


def needs_bank(cfg: PriorConfig) -> bool:
    """Whether this prior reads a filter bank."""
    return cfg.name in _PRIORS and _PRIORS[cfg.name].needs_bank


def uses_bank(cfg: TrainConfig) -> bool:
    """Whether a run with this config reads a filter bank (for its prior or its initialisation)."""
    return cfg.init.from_bank or needs_bank(cfg.prior)


# ---------------------------------------------------------------------------------- validation


def _validate_common(cfg: PriorConfig) -> None:
    check_ranges(cfg, "prior.")  # weight, warm-up, kernels per step, D's lr/steps/betas, MMD bandwidths
    if cfg.view not in VIEWS:
        raise UserError(f"prior.view: {cfg.view!r} is not a kernel view; expected one of {', '.join(VIEWS)}")
    if cfg.normalize not in NORMALIZATIONS:
        raise UserError(
            f"prior.normalize: {cfg.normalize!r} is not a normalisation; expected one of {', '.join(NORMALIZATIONS)}"
        )
