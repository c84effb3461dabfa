"""Datasets (official CIFAR, image folders, the embedded mini set), a decoded cache, splits and a loader."""

from filterprior.data.datasets import load_data
from filterprior.data.image_data import ImageData
from filterprior.data.loader import AugmentConfig, TensorLoader, channel_stats
from filterprior.data.roots import cache_dir, data_root
from filterprior.data.splits import Split, default_val_per_class, make_split

__all__ = [
    "AugmentConfig",
    "ImageData",
    "Split",
    "TensorLoader",
    "cache_dir",
    "channel_stats",
    "data_root",
    "default_val_per_class",
    "load_data",
    "make_split",
]
