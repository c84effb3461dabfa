"""Which filter bank a run reads: the prior's (`prior.bank`) and the initialisation's (`init.bank`, else
the prior's), else the one bundled for the model. A bank is named by its file or, for a bundled one, by its
name (`prior.bank=airnet-cifar100-networks`). Callers pass the model's registry name: a model
carries none."""

from __future__ import annotations

from pathlib import Path

from filterprior.banks.bank import FilterBank, default_bank_path, load_bank, resolve_bank
from filterprior.config import PriorConfig, TrainConfig
from filterprior.errors import UserError


def bank_file(cfg: PriorConfig, model_name: str | None, networks: bool = False) -> Path | None:
    """`prior.bank`, else the bank bundled for the model (None if none is): its bank of whole networks
    with `networks`, else its first-layer bank."""
    if cfg.bank:
        return resolve_bank(cfg.bank)
    return default_bank_path(model_name, networks=networks)


def prior_bank_file(cfg: TrainConfig) -> Path | None:
    """The bank the run's prior reads. Unset, the bundled one: of whole networks when the model is
    initialised as one (init.mode=network), so the prior sees the kernels of the network it starts from."""
    return bank_file(cfg.prior, cfg.model.name, networks=cfg.init.from_bank and cfg.init.mode == "network")


def init_bank_file(cfg: TrainConfig) -> Path | None:
    """The bank init.from_bank reads: `init.bank`, else `prior.bank`, else the bundled one
    (whole networks for init.mode=network, the first-layer bank for sample)."""
    if cfg.init.bank:
        return resolve_bank(cfg.init.bank)
    return bank_file(cfg.prior, cfg.model.name, networks=cfg.init.mode == "network")


def load_prior_bank(cfg: PriorConfig, model_name: str | None, path: Path | None = None,
                    what: str | None = None) -> FilterBank:
    """The bank at `path` (default: bank_file(cfg, model_name)); without one, a UserError saying how
    to get one."""
    path = path if path is not None else bank_file(cfg, model_name)
    if path is None:
        raise UserError(
            f"{what or ('prior ' + repr(cfg.name))} needs a filter bank, and none is bundled for model "
            f"{model_name!r}: build one from networks trained on plenty of data with `filterprior collect` "
            "and set prior.bank=<that file>"
        )
    return load_bank(path)
