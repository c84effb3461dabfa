"""The cells of a study: images per class x split seed x method, each one ordinary run directory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from filterprior.config import (
    TrainConfig,
    apply_overrides,
    config_hash,
    config_to_dict,
    current_key,
    legacy_config_hash,
    override_key,
)
from filterprior.errors import UserError
from filterprior.study.methods import Method

DEFAULT_SIZES = (10, 50, 100)
DEFAULT_SPLIT_SEEDS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Cell:
    method: Method
    images_per_class: int
    split_seed: int

    @property
    def rel_dir(self) -> Path:
        """Where the cell's run directory lives, relative to the study's output directory."""
        return Path(self.method.name) / f"n{self.images_per_class}" / f"split{self.split_seed}"

    @property
    def label(self) -> str:
        return f"{self.method.name} n={self.images_per_class} split={self.split_seed}"


def build_grid(sizes: Sequence[int], methods: Sequence[Method], split_seeds: Sequence[int]) -> list[Cell]:
    """Every cell, ordered size -> split seed -> method.

    Methods vary fastest so the cells sharing one data split finish close together (paired results
    appear early); small sizes come first because they are the quickest to train.
    """
    _check_unique_ints("images per class", sizes, minimum=1)
    _check_unique_ints("split seed", split_seeds, minimum=0)
    if not methods:
        raise UserError("a study needs at least one method")
    return [Cell(m, n, s) for n in sizes for s in split_seeds for m in methods]


def _check_unique_ints(what: str, values: Sequence[int], minimum: int) -> None:
    if not values:
        raise UserError(f"a study needs at least one {what}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise UserError(f"{what} {v!r} is not valid: expected an integer >= {minimum}")
    repeated = sorted({v for v in values if list(values).count(v) > 1})
    if repeated:
        listed = ", ".join(map(str, repeated))
        raise UserError(f"{what} {list(values)} lists {listed} more than once; give each value once")


def shard_cells(cells: Sequence[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """Shard i of n owns cell k when k % n == i, so job arrays can share one output directory."""
    if shard is None:
        return list(cells)
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise UserError(f"shard {index}/{count} is not valid: expected i/n with n >= 1 and 0 <= i < n")
    return [cell for k, cell in enumerate(cells) if k % count == index]


def cell_config(
    base: TrainConfig,
    cell: Cell,
    epochs_by_size: dict[int, int] | None = None,
    command_line_keys: Sequence[str] = (),
) -> TrainConfig:
    """Base config + the method's overrides (its shared ones, then its own for this size) + this cell's
    subset (+ its epochs, if given per size).

    Precedence, lowest first: the base config file, the method's overrides, what was given on the
    command line (`command_line_keys`: keys whose value in `base` came from the command line, e.g.
    `epochs` from --epochs), then --epochs-by-size. So `--epochs 3` gives every cell 3 epochs even
    where a methods file sets `epochs` (method_keys_overridden lists where that happens).

    `epochs_by_size` lets larger subsets train for fewer epochs (a comparable number of steps); it is
    the same for every method, and each cell's config.yaml records the epochs it ran.

    The training seed is base.seed + split_seed: the same for every method on one split (methods
    differ only in the method), but different across splits so the spread covers init noise too.
    """
    cfg = apply_overrides(base, list(cell.method.overrides_at(cell.images_per_class)))
    beaten = method_keys_overridden(cell.method, command_line_keys)
    if beaten:  # the command line wins: put its values back (JSON is valid YAML, so they parse as given)
        cfg = apply_overrides(cfg, [f"{key}={json.dumps(_get_key(base, key))}" for key in beaten])
    data = dataclasses.replace(cfg.data, images_per_class=cell.images_per_class, split_seed=cell.split_seed)
    cfg = dataclasses.replace(cfg, data=data, seed=base.seed + cell.split_seed)
    if epochs_by_size and cell.images_per_class in epochs_by_size:
        cfg = dataclasses.replace(cfg, epochs=epochs_by_size[cell.images_per_class])
    return cfg


def method_keys_overridden(method: Method, command_line_keys: Sequence[str]) -> list[str]:
    """The keys `method` sets that the command line also gives (so the command line's value is used)."""
    given = {current_key(key) for key in command_line_keys}  # old names (prior.init_from_bank) as today's
    return [key for key in method_keys(method) if key in given]


def method_keys(method: Method, images_per_class: int | None = None) -> list[str]:
    """The config keys `method` sets: at any size, or at `images_per_class` only (shared and by_size)."""
    items = method.all_overrides() if images_per_class is None else method.overrides_at(images_per_class)
    return list(dict.fromkeys(override_key(item) for item in items))


def _get_key(cfg: TrainConfig, key: str):
    data = config_to_dict(cfg)
    for part in key.split("."):
        data = data[part]
    return data


def recipe_config(cfg: TrainConfig) -> TrainConfig:
    """The cell's config with what differs between its split seeds taken out (the split seed, and the
    training seed base.seed + split_seed put back to base.seed): equal for the runs a table may average."""
    data = dataclasses.replace(cfg.data, split_seed=0)
    return dataclasses.replace(cfg, data=data, seed=cfg.seed - cfg.data.split_seed)


def recipe_hash(cfg: TrainConfig, legacy: bool = False) -> str:
    """cell_hash of recipe_config: the same for every split seed of one method at one size and config."""
    return cell_hash(recipe_config(cfg), legacy)


def cell_hash(cfg: TrainConfig, legacy: bool = False) -> str:
    """Config hash without the knobs that change how a run executes, not what it computes, plus the
    content hash of the filter bank the cell reads, if any.

    The runner sets threads from the worker count and switches progress bars off, so without this
    a resume with another --workers would redo every cell. `test` (whether the run reads the test set at
    its end) changes nothing trained: a --hide-test study trains without the read, and the study run
    without the flag reads it from the finished cell's weights (train.testset) instead of retraining.
    The bank's content counts because the config names only its path (or nothing, for the bundled one):
    a rebuilt bank must redo its cells.
    `legacy`: built on the legacy config hash, as cells recorded before the hash skipped defaults were.
    """
    from filterprior.banks.bank import bank_content_hash
    from filterprior.banks.locate import init_bank_file, prior_bank_file
    from filterprior.priors.base import needs_bank

    plain_cfg = dataclasses.replace(cfg, threads=None, progress=True, test=True)
    plain = legacy_config_hash(plain_cfg) if legacy else config_hash(plain_cfg)
    files = ([init_bank_file(cfg)] if cfg.init.from_bank else []) + ([prior_bank_file(cfg)] if needs_bank(cfg.prior) else [])
    banks = list(dict.fromkeys(f for f in files if f is not None))  # one file when both read the same
    if not banks:  # no bank read (or none to find: the run itself will say so)
        return plain
    contents = ":".join(bank_content_hash(bank) for bank in banks)
    return hashlib.sha256(f"{plain}:{contents}".encode()).hexdigest()[:12]


def same_cell(stored_hash: str | None, cfg: TrainConfig) -> bool:
    """config.same_config for a study cell: its recorded hash is today's cell hash or the legacy one."""
    return stored_hash is not None and stored_hash in (cell_hash(cfg), cell_hash(cfg, legacy=True))
