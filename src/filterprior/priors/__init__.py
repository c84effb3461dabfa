"""Priors over conv filters: filter banks, kernel views, loss terms (one file per prior), init from bank.

Importing this package registers every prior; `create_prior(cfg, model, device)` builds the configured one.
"""

from filterprior.priors.bank import (
    FilterBank,
    bank_sidecar_path,
    default_bank_path,
    describe_bank,
    load_bank,
    save_bank,
    show_bank,
)
from filterprior.priors.bank_build import bank_from_state_dicts, collect_bank
from filterprior.priors.base import (
    LossTerm,
    create_prior,
    effective_config,
    list_priors,
    load_prior_bank,
    register_prior,
    warmup_factor,
)
from filterprior.priors.views import kernel_slices, normalize_kernels, select_layers, whole_filters

# each import below registers one prior
from filterprior.priors import adversarial, gaussian, l2, l2_sp, mmd  # noqa: E402,F401  isort: skip
from filterprior.priors.init_from_bank import apply_init_from_bank, init_from_bank  # noqa: E402

__all__ = [
    "FilterBank",
    "LossTerm",
    "apply_init_from_bank",
    "bank_from_state_dicts",
    "bank_sidecar_path",
    "collect_bank",
    "create_prior",
    "default_bank_path",
    "describe_bank",
    "effective_config",
    "init_from_bank",
    "kernel_slices",
    "list_priors",
    "load_bank",
    "load_prior_bank",
    "normalize_kernels",
    "register_prior",
    "save_bank",
    "select_layers",
    "show_bank",
    "warmup_factor",
    "whole_filters",
]
