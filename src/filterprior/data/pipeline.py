"""From a config to data: the dataset a DataConfig names, and the loaders a run trains and tests on.

The engine, the study's preflight, `filterprior eval`'s run directories and the benchmarks all build
their data here, so they read the same images the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from filterprior.config import DataConfig, TrainConfig
from filterprior.data.datasets import load_data
from filterprior.data.image_data import ImageData
from filterprior.data.loader import AugmentConfig, TensorLoader, channel_stats
from filterprior.data.locate import CANDIDATES
from filterprior.data.mixing import MixConfig
from filterprior.data.splits import default_val_per_class, make_split


def load_configured_data(d: DataConfig) -> ImageData:
    """The dataset as `d` names it (dataset, root, download, image size, test fraction)."""
    return load_data(d.dataset, root=d.root, download=d.download, image_size=d.image_size,
                     test_fraction=d.test_fraction)


@dataclass
class Prepared:
    """Everything a run needs before its first step: the data, its split into loaders, the normalisation."""

    data: Any
    classes: list[str]
    train_loader: Any
    val_loader: Any | None
    test_loader: Any
    mean: tuple[float, ...]
    std: tuple[float, ...]
    images_per_class: int | None
    mix: Any = None  # MixConfig: mixup / CutMix, applied per batch by the engine


def prepare_data(cfg: TrainConfig, device: torch.device, shard: tuple[int, int] = (0, 1)) -> Prepared:
    """The configured dataset as the engine trains on it: the training subset, the validation pool and the
    test set as loaders on `device` (also what preflight, eval and the benchmarks read). `shard`
    (rank, world) under DDP: the training loader yields this rank's share of each global batch."""
    d = cfg.data
    data = load_configured_data(d)
    val_per_class = d.val_per_class if d.val_per_class is not None else default_val_per_class(data)
    split = make_split(data.train_labels, d.images_per_class, d.split_seed, val_per_class)
    train_x, train_y = data.train_images[split.train_idx], data.train_labels[split.train_idx]
    if d.mean is not None and d.std is not None:
        mean, std = tuple(d.mean), tuple(d.std)
    else:  # measured on the images this run trains on: all a small-data user has
        mean, std = channel_stats(train_x)
    augment = AugmentConfig(crop_padding=d.crop_padding, flip=d.flip, cutout=d.cutout, policy=d.policy,
                            randaugment_n=d.randaugment_n, randaugment_m=d.randaugment_m)
    mix = MixConfig(mixup=d.mixup, cutmix=d.cutmix, prob=d.mix_prob)
    # A last batch of one image breaks BatchNorm in training mode: drop it in that case only. Under DDP
    # (shard[1] processes) every share of it needs two images, so a last batch under 2 x world is dropped.
    drop_last = 0 < len(train_y) % cfg.batch_size < 2 * shard[1]
    common = dict(mean=mean, std=std, device=device)
    # mixup/CutMix pair images across the whole batch: then each rank loads the whole batch and the engine
    # keeps its share after mixing (train/distributed.take_share), so mixed images match one process's too.
    train_loader = TensorLoader(
        train_x, train_y, cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed, drop_last=drop_last,
        shard=(0, 1) if mix.on else shard, **common
    )
    val_loader = None
    if len(split.val_idx):
        val_loader = TensorLoader(
            data.train_images[split.val_idx], data.train_labels[split.val_idx], cfg.eval_batch_size,
            shuffle=False, augment=None, **common,
        )
    test_loader = TensorLoader(
        data.test_images, data.test_labels, cfg.eval_batch_size, shuffle=False, augment=None, **common
    )
    return Prepared(data, list(data.classes), train_loader, val_loader, test_loader, mean, std, d.images_per_class,
                    mix)


def with_absolute_data_paths(cfg: TrainConfig) -> TrainConfig:
    """An existing local dataset path (and data root) made absolute, so the saved config.yaml still
    finds the data from another working directory; dataset names (mini, cifar10, ...) stay names."""
    data = cfg.data
    dataset, root = data.dataset, data.root
    if dataset != "mini" and dataset not in CANDIDATES and Path(dataset).expanduser().exists():
        dataset = str(Path(dataset).expanduser().resolve())
    if root is not None and Path(root).expanduser().is_dir():
        root = str(Path(root).expanduser().resolve())
    return dataclasses.replace(cfg, data=dataclasses.replace(data, dataset=dataset, root=root))
