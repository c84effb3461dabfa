"""`load_data`: one entry point for every dataset form; dispatches to a reader and caches the result."""

from __future__ import annotations

import hashlib
import os
import tarfile
from importlib import resources
from pathlib import Path

from filterprior.data import locate
from filterprior.data.cache import cache_key, cached, file_identity
from filterprior.data.checks import check_usable
from filterprior.data.folders import folder_fingerprint, load_folder, load_folder_archive
from filterprior.data.image_data import ImageData
from filterprior.data.limits import check_image_size
from filterprior.data.official_cifar import (
    folder_files,
    layout_of_folder,
    layout_of_member,
    load_official_archive,
    load_official_folder,
)
from filterprior.data.roots import data_root
from filterprior.data.safe_tar import first_member_name
from filterprior.errors import UserError
from filterprior.utils import sha256_file

MINI_ASSET = "assets/mini-cifar10.tar.gz"
# The shared development archives are CIFAR under another form; give them the dataset's name.
KNOWN_ARCHIVE_NAMES = {"cifar10-jpeg": "cifar10", "cifar100-png": "cifar100"}
ACCEPTED = (
    "expected cifar10, cifar100, mini, or a path to: an image folder (train/<class>/<image>, optionally "
    "test/<class>/<image>), a .tar.gz of one, an official CIFAR archive (cifar-10-python.tar.gz / "
    "cifar-100-python.tar.gz) or its extracted folder (cifar-10-batches-py / cifar-100-python)"
)


def load_data(
    dataset: str,
    root: str | os.PathLike | None = None,
    download: bool = True,
    image_size: int = 32,
    test_fraction: float = 0.2,
) -> ImageData:
    """Load a dataset as uint8 arrays (decoded once, then read from the cache).

    `dataset` is `cifar10`, `cifar100` (looked for in the data root: `root`, else $FILTERPRIOR_DATA,
    else ~/.cache/filterprior/data; the official archive is downloaded there when missing and
    `download` is true), `mini` (1,100 real CIFAR-10 images shipped with the package), or a path to an
    image folder, a tar archive of one, an official CIFAR archive or its extracted folder.

    Image folders: classes are the folder names under train/, sorted; names starting with '.' are
    ignored; images of another size are converted to RGB and resized to `image_size` (Pillow bilinear,
    antialiased when shrinking; non-square images are stretched); an unreadable image stops the load
    naming the file. A folder without test/ gets a stratified test set chosen by content:
    round(test_fraction * n) images of each class, the first in the order of their bytes' sha256 (the
    same on every load; adding files moves the split only at its edge: data/holdout.py).
    Official CIFAR-100 uses the fine labels. An image folder with fewer than 2 classes, a class without
    training or test images, or a class folder without images is refused. `image_size` is bounded
    (limits.py: 8..512), and so are the bytes read (64 MiB an image file, 4 GiB in all).
    """
    check_image_size(image_size)
    if not 0.0 < float(test_fraction) < 1.0:
        raise UserError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}")
    options = (image_size, float(test_fraction))
    if dataset == "mini":
        return _load_mini(*options)
    if dataset in locate.CANDIDATES:
        path = locate.locate(dataset, data_root(root), download)
        return load_path(path, *options, name=dataset)
    path = Path(str(dataset)).expanduser()
    if not path.exists():
        raise UserError(f"dataset {dataset!r} is neither a known name nor an existing path; {ACCEPTED}")
    return load_path(path, *options)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_path(path: Path, image_size: int, test_fraction: float, name: str | None = None) -> ImageData:
    """Load a folder or archive, telling the official CIFAR form from an image folder by its content."""
    if path.is_dir():
        layout = layout_of_folder(path)
        if layout is not None:
            ident = [file_identity(path / f) for f in folder_files(layout) if (path / f).is_file()]
            key = cache_key("official-folder", *ident, image_size)
            return cached(layout.name, key, lambda: load_official_folder(path, layout, image_size=image_size))
        name = name or KNOWN_ARCHIVE_NAMES.get(path.name, path.resolve().name)
        key = cache_key("folder", path.resolve(), folder_fingerprint(path), image_size, test_fraction)
        options = dict(name=name, image_size=image_size, test_fraction=test_fraction)
        return check_usable(cached(name, key, lambda: load_folder(path, **options)), test_fraction)
    try:
        is_tar = tarfile.is_tarfile(path)
    except OSError as exc:
        raise UserError(f"cannot read dataset {str(path)!r}: {exc}") from exc
    if not is_tar:
        raise UserError(f"dataset {str(path)!r} is a file but not a tar archive; {ACCEPTED}")
    layout = layout_of_member(first_member_name(path))
    key = cache_key("archive", file_identity(path), image_size, test_fraction)
    if layout is not None:
        return cached(
            layout.name,
            key,
            lambda: load_official_archive(path, layout, source_hash=sha256_file(path), image_size=image_size),
        )
    name = name or KNOWN_ARCHIVE_NAMES.get(_stem(path), _stem(path))
    data = cached(
        name,
        key,
        lambda: load_folder_archive(
            path, name=name, source_hash=sha256_file(path), image_size=image_size, test_fraction=test_fraction
        ),
    )
    return check_usable(data, test_fraction)


def _load_mini(image_size: int, test_fraction: float) -> ImageData:
    """The embedded set; keyed by its content hash (354 KB: a millisecond), which works from a zip too."""
    asset = resources.files("filterprior").joinpath(MINI_ASSET)
    try:
        blob = asset.read_bytes()
    except OSError as exc:
        raise UserError(f"the embedded mini dataset {MINI_ASSET} is missing from the installed package "
                        f"({exc}); reinstall filterprior or rebuild it with scripts/build_mini_dataset.py") from exc
    digest = hashlib.sha256(blob).hexdigest()
    key = cache_key("mini", digest, image_size, test_fraction)

    def build() -> ImageData:
        with resources.as_file(asset) as path:
            options = dict(image_size=image_size, test_fraction=test_fraction)
            data = load_folder_archive(Path(path), name="mini", source_hash=digest, **options)
        data.source = f"filterprior/{MINI_ASSET}"
        return data

    return cached("mini", key, build)
