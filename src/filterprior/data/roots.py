"""Where datasets are looked for (the data root) and where decoded arrays are cached."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "FILTERPRIOR_DATA"
CACHE_ENV = "FILTERPRIOR_CACHE"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The `root` argument, else $FILTERPRIOR_DATA, else ~/.cache/filterprior/data."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "filterprior" / "data"


def cache_dir() -> Path:
    """$FILTERPRIOR_CACHE, else ~/.cache/filterprior (decoded-array caches live here)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "filterprior"
