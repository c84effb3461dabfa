"""Priors over conv filters as loss terms, one file per prior; `create_prior(cfg, model, device)` builds
the configured one. Importing this package registers every prior. Banks live in filterprior.banks."""

from filterprior.priors.base import LossTerm, needs_bank, register_prior, uses_bank, warmup_factor
from filterprior.priors.registry import create_prior, list_priors

__all__ = [
    "LossTerm",
    "create_prior",
    "list_priors",
    "needs_bank",
    "register_prior",
    "uses_bank",
    "warmup_factor",
]
