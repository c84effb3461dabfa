"""Everything a run needs before its first step: the model, the prior, the optimiser and the rest of
what is trained (`Trainee`), and a new run directory with its config, environment and start pictures.

The order of construction is part of every recorded result: the model's initialisation, the prior's
and the mixer's draws come from the generators seeded before them, so build in the order of `build`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from filterprior.config import TrainConfig, save_config
from filterprior.data.pipeline import Prepared
from filterprior.errors import UserError
from filterprior.models.introspect import unwrap
from filterprior.models.summary import forward_error
from filterprior.train.environment import environment_info
from filterprior.train.optim import build_optimizer, build_scheduler
from filterprior.train.precision import compiled, grad_scaler
from filterprior.utils import atomic_write_text


def build_model(cfg: TrainConfig, num_classes: int, device: torch.device):
    from filterprior.models import create_model

    model = create_model(cfg.model.name, num_classes=num_classes, **cfg.model.options)
    check_image_size(model, cfg.model.name, cfg.data.image_size)
    if cfg.init.from_bank or cfg.init.freeze != "none":
        from filterprior.banks import apply_init_from_bank

        apply_init_from_bank(cfg, model, torch.Generator().manual_seed(cfg.seed))
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def check_image_size(model: nn.Module, name: str, image_size: int) -> None:
    """UserError unless one image of data.image_size passes through the model: models with a fixed-size
    head (simplecnn, mynet-small) would otherwise fail mid-run with a shape error. One zero image on the
    CPU in eval mode, before the model moves or is initialised, so it changes nothing the run computes."""
    error = forward_error(model, image_size)
    if error is not None:
        raise UserError(
            f"model {name} does not take {image_size}x{image_size} images (data.image_size={image_size}): "
            f"{str(error).splitlines()[0]}; use data.image_size=32, for which the zoo's models are built, "
            "or a model that pools globally before its head (airnet, filternet, the resnets, wrn-*)"
        )


@dataclass
class Trainee:
    """What a run trains and steps, and what it saves in a checkpoint."""

    model: nn.Module
    prior: Any  # a loss term (filterprior.priors) or None
    mixer: Any  # data.mixing.BatchMixer
    ema: Any  # train.ema.WeightEMA or None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    steps_per_epoch: int
    num_classes: int
    scaler: torch.amp.GradScaler | None = None  # amp=fp16 only
    # DDP hooks (train/distributed.py): the DDP wrapper the training forward goes through (evaluation and
    # priors use the model itself), and whether each rank mixes the whole batch and keeps its share
    forward: nn.Module | None = None
    shares_mixed_batch: bool = False

    @property
    def plain(self) -> nn.Module:
        """The model without torch.compile's wrapper: what priors inspect and state dicts are taken of."""
        return unwrap(self.model)

    @property
    def evaluated(self) -> nn.Module:
        """What is validated, tested and exported: the weight average when `ema` is on."""
        return self.ema.model if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        return {"model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "prior": self.prior.state_dict() if self.prior is not None else None,
                "ema": self.ema.state_dict() if self.ema is not None else None,
                **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.prior is not None and state.get("prior") is not None:
            self.prior.load_state_dict(state["prior"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])


def build(cfg: TrainConfig, prep: Prepared, device: torch.device) -> Trainee:
    """Model, prior, mixer, weight average, optimiser and schedule, in the order recorded runs used."""
    from filterprior.banks import prior_bank_file
    from filterprior.data.mixing import BatchMixer
    from filterprior.priors import create_prior
    from filterprior.train.ema import WeightEMA

    model = build_model(cfg, len(prep.classes), device)
    if cfg.sync_batchnorm:  # DDP hook: BatchNorm statistics over the global batch (CUDA only)
        from filterprior.train import distributed

        model = distributed.convert_sync_batchnorm(model, device)
    prior = create_prior(cfg.prior, model, device, prior_bank_file(cfg), model_name=cfg.model.name)
    mixer = BatchMixer(prep.mix, seed=cfg.seed)
    ema = WeightEMA(unwrap(model), cfg.ema) if cfg.ema > 0 else None
    optimizer = build_optimizer(model, cfg.optim)
    steps_per_epoch = len(prep.train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"batch_size {cfg.batch_size} leaves no full training batch")
    scheduler = build_scheduler(optimizer, cfg.optim, steps_per_epoch, cfg.epochs * steps_per_epoch)
    return Trainee(compiled(model, cfg.compile), prior, mixer, ema, optimizer, scheduler, steps_per_epoch,
                   len(prep.classes), grad_scaler(cfg.amp, device))


def check_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} is an existing file; choose a directory (new or a run's) for --out")


def start_run_dir(run_dir: Path, cfg: TrainConfig, device: torch.device, prep: Prepared, model: nn.Module) -> None:
    """A new run's directory: config.yaml, env.json and (if asked) the start pictures."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    from filterprior.train import distributed

    env = {**environment_info(device, cfg), **distributed.describe()}  # DDP hook: world size, backend
    atomic_write_text(run_dir / "env.json", json.dumps(env, indent=2))
    if cfg.filter_pictures:
        save_filter_picture(model, run_dir / "filters_start.png", "first conv layer, start")
    if prep.train_loader.augment.on or prep.mix.on:
        save_augment_preview(prep, cfg, run_dir / "augment_preview.png")


def _first_conv_weight(model) -> torch.Tensor | None:
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module.weight.detach().cpu()
    return None


def save_filter_picture(model, path: Path, title: str) -> None:
    weight = _first_conv_weight(model)
    if weight is None:
        return
    from filterprior.figures.filters import plot_filter_grid

    kernels = weight if weight.shape[1] == 3 else weight.flatten(0, 1)
    plot_filter_grid(kernels, path, title=title)


def save_augment_preview(prep: Prepared, cfg: TrainConfig, path: Path) -> None:
    """What this recipe's augmentation does to some of the run's own training images (its own draws;
    the run's generators are untouched)."""
    from filterprior.data.augment_preview import augment_preview

    loader = prep.train_loader
    augment_preview(loader.images.permute(0, 2, 3, 1), loader.labels, loader.augment, prep.mix, path,
                    seed=cfg.seed, classes=prep.classes)


def image_counts(prep: Prepared) -> str:
    """Where the dataset's images went: 'full' CIFAR-10 trains on 45,000 (5,000 go to the validation
    pool), and an own folder without test/ also gives 20 % of each class to its test set."""
    n_train, n_all = len(prep.train_loader.labels), len(prep.data.train_labels)
    n_pool = len(prep.val_loader.labels) if prep.val_loader is not None else 0
    unused = n_all - n_train - n_pool
    parts = [f"{n_pool} in the validation pool"] + ([f"{unused} unused"] if unused else [])
    return (f"{n_train} training images (of {n_all}: {', '.join(parts)}), "
            f"{len(prep.test_loader.labels)} test images")
