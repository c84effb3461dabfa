"""Check a study's configs once before any cell trains, so a bad dataset, model or size is one error,
not the same failure repeated in every cell of the grid."""

from __future__ import annotations

from typing import Sequence

from filterprior.config import TrainConfig, validate_config
from filterprior.errors import UserError


def check_configs(configs: Sequence[TrainConfig]) -> None:
    """UserError unless every config's values are in range, each distinct dataset loads, each model
    builds with its prior (so a filter bank that does not fit the model fails here), and the largest
    subset fits."""
    by_data: dict[tuple, list[TrainConfig]] = {}
    for cfg in configs:
        try:
            validate_config(cfg)
        except UserError as exc:
            raise UserError(f"cannot start the study: {exc}") from None
        d = cfg.data
        key = (d.dataset, d.root, d.download, d.image_size, d.test_fraction, d.val_per_class)
        by_data.setdefault(key, []).append(cfg)
    for group in by_data.values():
        try:
            data = _load(group[0])
            _check_models(group, data.num_classes)
            _check_sizes(group, data)
        except UserError as exc:
            raise UserError(f"cannot start the study: {exc}") from None


def _load(cfg: TrainConfig):
    from filterprior.data.pipeline import load_configured_data

    return load_configured_data(cfg.data)


def _check_sizes(configs: Sequence[TrainConfig], data) -> None:
    """Draw the largest subset as the engine does (whether it fits does not depend on the split seed)."""
    from filterprior.data import default_val_per_class, make_split

    d = configs[0].data
    val_per_class = d.val_per_class if d.val_per_class is not None else default_val_per_class(data)
    sizes = [c.data.images_per_class for c in configs]
    largest = None if None in sizes else max(sizes)
    try:
        make_split(data.train_labels, largest, 0, val_per_class, classes=list(data.classes))
    except UserError as exc:
        raise UserError(f"dataset {d.dataset}: {exc}") from None


def _check_models(configs: Sequence[TrainConfig], num_classes: int) -> None:
    """Build each distinct model with its bank initialisation and prior once, on the CPU, as the engine will."""
    from dataclasses import astuple

    import torch

    from filterprior.banks import prior_bank_file
    from filterprior.priors import create_prior
    from filterprior.train.setup import build_model

    cpu = torch.device("cpu")
    seen = set()
    for cfg in configs:
        key = (cfg.model.name, repr(sorted(cfg.model.options.items())), repr(astuple(cfg.prior)), repr(astuple(cfg.init)))
        if key not in seen:
            seen.add(key)
            model = build_model(cfg, num_classes, cpu)
            create_prior(cfg.prior, model, cpu, prior_bank_file(cfg), model_name=cfg.model.name)
