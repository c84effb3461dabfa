"""Stratified subsets of the training images plus a fixed validation pool.

Which images are chosen is decided by ranking image indices by a seeded integer hash (splitmix64),
not by a numpy/torch generator: the result is then the same on every platform and library version,
and a subset of n images per class is the first n of the class's ranking (so subsets nest as n grows,
though nothing relies on that).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from filterprior.errors import UserError

VAL_SEED = 0x5EED_0F_5A1  # fixed: the validation pool never depends on split_seed
_MASK = (1 << 64) - 1


class Split(NamedTuple):
    train_idx: np.ndarray  # int64, sorted: indices into the training images
    val_idx: np.ndarray  # int64, sorted: the validation pool, disjoint from train_idx


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_ranks(seed: int, indices: np.ndarray) -> np.ndarray:
    """A pseudo-random uint64 per index, a pure function of (seed, index); sort by it to shuffle."""
    key = _splitmix64(np.array([seed & _MASK], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        return _splitmix64(np.asarray(indices, dtype=np.uint64) ^ key)


def _shuffled(seed: int, indices: np.ndarray) -> np.ndarray:
    return indices[np.argsort(hash_ranks(seed, indices), kind="stable")]


def _class_name(c: int, classes: list[str] | None) -> str:
    return f"class {c} ({classes[c]!r})" if classes is not None and c < len(classes) else f"class {c}"


def make_split(
    labels: np.ndarray,
    images_per_class: int | None,
    split_seed: int,
    val_per_class: int,
    *,
    classes: list[str] | None = None,
) -> Split:
    """Pick a validation pool and a training subset from the training images' `labels`.

    The pool holds `val_per_class` images of each class chosen with VAL_SEED (independent of
    `split_seed`); the subset holds `images_per_class` images of each class drawn by `split_seed` from
    the images outside the pool, or all of them when `images_per_class` is None. `classes` only
    makes error messages name the class.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise UserError(f"labels must be one-dimensional, got shape {labels.shape}")
    if val_per_class < 0:
        raise UserError(f"val_per_class must be 0 or more, got {val_per_class}")
    if images_per_class is not None and images_per_class < 1:
        raise UserError(f"images_per_class must be 1 or more (or None for all), got {images_per_class}")
    train_parts, val_parts = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if val_per_class > len(idx):
            raise UserError(
                f"{_class_name(int(c), classes)} has {len(idx)} training images, "
                f"fewer than val_per_class={val_per_class}"
            )
        pool = _shuffled(VAL_SEED, idx)[:val_per_class]
        rest = np.setdiff1d(idx, pool)
        if images_per_class is None:
            chosen = rest
        elif images_per_class > len(rest):
            raise UserError(
                f"{_class_name(int(c), classes)} has {len(idx)} training images, {len(rest)} outside "
                f"the validation pool of {val_per_class}; images_per_class={images_per_class} is too many"
            )
        else:
            chosen = _shuffled(split_seed, rest)[:images_per_class]
        train_parts.append(chosen)
        val_parts.append(pool)
    empty = np.empty(0, dtype=np.int64)
    return Split(
        train_idx=np.sort(np.concatenate(train_parts or [empty])).astype(np.int64),
        val_idx=np.sort(np.concatenate(val_parts or [empty])).astype(np.int64),
    )


DEFAULT_VAL_PER_CLASS = {"cifar10": 500, "cifar100": 100, "mini": 0}


def default_val_per_class(data) -> int:
    """500 for cifar10, 100 for cifar100, 0 for mini; other datasets min(100, 10% of the smallest class)."""
    if data.name in DEFAULT_VAL_PER_CLASS:
        return DEFAULT_VAL_PER_CLASS[data.name]
    counts = np.bincount(np.asarray(data.train_labels), minlength=len(data.classes))
    return int(min(100, int(counts.min()) // 10)) if len(counts) else 0
