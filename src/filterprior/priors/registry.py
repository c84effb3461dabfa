"""Every prior, registered (importing a loss term's module registers it), and building the configured one."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from filterprior.banks.bank import FilterBank
from filterprior.banks.locate import load_prior_bank
from filterprior.config import PriorConfig
from filterprior.errors import UserError
from filterprior.priors import adversarial, gaussian, l2, l2_sp, mmd  # noqa: F401  (each registers its prior)
from filterprior.priors.base import _PRIORS, LossTerm


def list_priors() -> list[str]:
    return ["none", *sorted(_PRIORS)]


def create_prior(
    cfg: PriorConfig, model: nn.Module, device: torch.device | str, bank: FilterBank | str | Path | None = None,
    *, model_name: str | None = None,
) -> LossTerm | None:
    """The configured prior as a loss term (None for `none`), built on `device`.

    A prior that needs a bank uses `bank` (a bank, or its file: the engine passes
    banks.prior_bank_file(cfg)), else reads `prior.bank`, else the bank bundled for `model_name` (the
    registry name the model was built with; the model itself does not carry it).
    """
    names = list_priors()
    if cfg.name == "none":
        return None
    if cfg.name not in _PRIORS:
        raise UserError(f"prior.name: {cfg.name!r} is not a prior; expected one of {', '.join(names)}")
    cls = _PRIORS[cfg.name]
    if not isinstance(bank, FilterBank):  # a file, or nothing: read only by a prior that needs a bank
        path = Path(bank) if bank is not None else None
        bank = load_prior_bank(cfg, model_name, path) if cls.needs_bank else None
    return cls(cfg, model, device, bank)
