"""Which filter bank a run reads: `prior.bank` if set, else the one bundled for the model."""

from __future__ import annotations

from pathlib import Path

from filterprior.banks.bank import FilterBank, default_bank_path, load_bank
from filterprior.config import PriorConfig
from filterprior.errors import UserError


def load_prior_bank(cfg: PriorConfig, model_name: str | None) -> FilterBank:
    """`prior.bank` if set, else the bank bundled for the model named `model_name` (its registry name);
    init_mode=network takes the bundled bank of whole networks, the learned priors the first-layer one."""
    path = bank_file(cfg, model_name)
    if path is None:
        raise UserError(
            f"{'prior ' + repr(cfg.name) if cfg.name != 'none' else 'prior.init_from_bank'} needs a filter bank, and none is bundled for model {model_name!r}: build one "
            "from networks trained on plenty of data with `filterprior collect` and set prior.bank=<that file>"
        )
    return load_bank(path)


def bank_file(cfg: PriorConfig, model_name: str | None) -> Path | None:
    """The bank file such a run reads: `prior.bank`, else the one bundled for the model (None if none is)."""
    if cfg.bank:
        return Path(cfg.bank)
    return default_bank_path(model_name, networks=cfg.init_from_bank and cfg.init_mode == "network")
