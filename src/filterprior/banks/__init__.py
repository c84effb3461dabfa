"""Filter banks: the bank format (save, load, sample), building banks from trained networks, finding the
bank a run reads, and initialising (optionally freezing) a model's conv layers from a bank."""

from filterprior.banks.bank import (
    FilterBank,
    bank_sidecar_path,
    default_bank_path,
    describe_bank,
    load_bank,
    save_bank,
    show_bank,
)
from filterprior.banks.build import bank_from_state_dicts, collect_bank
from filterprior.banks.init_from_bank import apply_init_from_bank, init_from_bank
from filterprior.banks.locate import bank_file, init_bank_file, load_prior_bank, prior_bank_file
from filterprior.banks.views import kernel_slices, normalize_kernels, whole_filters

__all__ = [
    "FilterBank",
    "apply_init_from_bank",
    "bank_file",
    "bank_from_state_dicts",
    "bank_sidecar_path",
    "collect_bank",
    "default_bank_path",
    "describe_bank",
    "init_bank_file",
    "init_from_bank",
    "kernel_slices",
    "load_bank",
    "load_prior_bank",
    "normalize_kernels",
    "prior_bank_file",
    "save_bank",
    "show_bank",
    "whole_filters",
]
