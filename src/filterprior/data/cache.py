"""Decoded-uint8 cache: `<cache dir>/<name>-<key>.npz`, uncompressed so a load is one fast read.

The key is a sha256 of the source's identity as the file system sees it (absolute path, size and
mtime_ns of the archive, or of every image in a folder) plus the load options, not of its content:
hashing a 160 MB archive on every load would cost more than reading the cache. The content sha256 is
computed once, when the cache is built, and stored in it as `source_hash`. Touching or replacing the
source changes its mtime and so the key, and the next load rebuilds.

The key is also stored inside the file and checked on load: a cache file copied over another's name (or
any file that is not the cache of this key) is rebuilt, never used. So is one that cannot be read at all
(empty, truncated, not an npz).
"""

from __future__ import annotations

import hashlib
import re
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from filterprior.data.image_data import ImageData
from filterprior.data.roots import cache_dir
from filterprior.utils import atomic_path

CACHE_VERSION = "2"  # bump when the decoding changes, so old caches are not reused
# 2: held-out test images chosen by content; EXIF orientation; 16-bit images by their range; key stored
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def file_identity(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"


def cache_key(*parts: object) -> str:
    blob = "\0".join([CACHE_VERSION, *map(str, parts)]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_path(name: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "data"
    return cache_dir() / f"{safe}-{key}.npz"


def read_cache(path: Path, key: str) -> ImageData | None:
    """The cached data, or None when there is none, it cannot be read or it is not the cache of `key`
    (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key:
                return None
            arrays = {k: npz[k] for k in _ARRAYS}
            return ImageData(
                name=str(npz["name"]),
                classes=[str(c) for c in npz["classes"]],
                source=str(npz["source"]),
                source_hash=str(npz["source_hash"]),
                **arrays,
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # EOFError: an empty file
        return None


def write_cache(path: Path, data: ImageData, key: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        # a file handle, not a path: np.savez would append '.npz' to the temporary name
        np.savez(
            handle,
            key=np.array(key),
            name=np.array(data.name),
            classes=np.array(data.classes, dtype=str),
            source=np.array(data.source),
            source_hash=np.array(data.source_hash),
            **{k: getattr(data, k) for k in _ARRAYS},
        )


def cached(name: str, key: str, build: Callable[[], ImageData]) -> ImageData:
    """Load `<name>-<key>.npz`, or build the data, write the cache atomically and return it.

    If `build` raises, nothing is written (and no temporary file is left).
    """
    path = cache_path(name, key)
    data = read_cache(path, key)
    if data is None:
        data = build()
        try:
            write_cache(path, data, key)
        except OSError as exc:  # a read-only cache dir should not stop a run; it only costs speed
            warnings.warn(
                f"could not write the data cache {path}: {exc}; point FILTERPRIOR_CACHE elsewhere",
                stacklevel=2,
            )
    return data
