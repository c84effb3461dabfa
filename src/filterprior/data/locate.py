"""Find `cifar10` / `cifar100` in the data root, downloading the official archive when allowed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from filterprior.data.download import DownloadFailed, download
from filterprior.errors import UserError


@dataclass(frozen=True)
class OfficialArchive:
    title: str
    filename: str
    url: str
    md5: str


# Module-level so tests (and mirrors) can point the download elsewhere.
OFFICIAL_ARCHIVES = {
    "cifar10": OfficialArchive(
        "CIFAR-10",
        "cifar-10-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": OfficialArchive(
        "CIFAR-100",
        "cifar-100-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
}

# Looked for in this order; a trailing '/' marks a folder.
CANDIDATES = {
    "cifar10": ("cifar-10-batches-py/", "cifar-10-python.tar.gz", "cifar10-jpeg.tar.gz", "cifar10/"),
    "cifar100": ("cifar-100-python/", "cifar-100-python.tar.gz", "cifar100-png.tar.gz", "cifar100/"),
}


def find_in_root(name: str, root: Path) -> Path | None:
    for candidate in CANDIDATES[name]:
        path = root / candidate.rstrip("/")
        if path.is_dir() if candidate.endswith("/") else path.is_file():
            return path
    return None


def locate(name: str, root: Path, download_allowed: bool) -> Path:
    """Path of the first candidate found in `root`; else the downloaded official archive."""
    found = find_in_root(name, root)
    if found is not None:
        return found
    official = OFFICIAL_ARCHIVES[name]
    if download_allowed:
        try:
            return download(official.url, root / official.filename, official.md5)
        except DownloadFailed as exc:
            raise UserError(_not_found(name, root, f"the download failed ({exc})")) from exc
    raise UserError(_not_found(name, root, "downloading is switched off (download=False)"))


def _not_found(name: str, root: Path, why: str) -> str:
    official = OFFICIAL_ARCHIVES[name]
    looked = ", ".join(CANDIDATES[name])
    return (
        f"{official.title} is not in the data root {root} (looked for {looked}) and {why}.\n"
        f"Download {official.url} (MD5 {official.md5}) and put {official.filename} in {root}, "
        f"or point FILTERPRIOR_DATA (or --data-root) at the folder that holds it."
    )
