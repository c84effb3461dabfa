"""Small helpers shared across the package: atomic writes, reading JSON/YAML files, hashing, seeding, device choice."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import yaml

from filterprior.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash or an exception inside the block leaves `path` untouched and removes the temporary file,
    so readers never see a half-written file. replace=False creates `path` only if it does not exist
    (a hard link, which fails with FileExistsError if another writer got there first), so of several
    writers racing to create one file exactly one wins and none overwrites it.
    """
    path = Path(path)
    if path.is_dir():  # os.replace would fail late with IsADirectoryError
        raise UserError(f"{path} is a directory; expected the path of a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise UserError(f"cannot write {path}: part of {path.parent} is a file, not a directory") from exc
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 (and some writers recreate the file): give it the usual permissions.
        os.chmod(tmp_path, 0o666 & ~_umask())
        if replace:
            os.replace(tmp_path, path)
        else:
            os.link(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A UTF-8 text file; UserError naming it (as `what`, e.g. "config file") when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (bad byte at offset {exc.start}); "
                        "save it as UTF-8") from exc
    except OSError as exc:
        raise UserError(f"{what} {path} could not be read: {exc.strerror or exc}") from exc


def read_json(path: str | os.PathLike, what: str = "JSON file") -> dict:
    """A file holding one JSON object; UserError naming the file and what is wrong."""
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{what} {path}: expected a JSON object, found a {type(data).__name__}")
    return data


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> object:
    """A YAML file's content (None when empty); UserError naming the file and where the YAML is wrong.
    Callers check the shape they expect (usually a mapping) and say what it should hold."""
    text = read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{what} {path} is not valid YAML: {yaml_problem(exc)}") from exc


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line from a YAML error: what is wrong and where (PyYAML's own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; cpu, cuda, cuda:N and mps are checked to exist here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"device {name!r} is not valid: expected auto, cpu, cuda, cuda:N or mps") from exc
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"device {name!r} is not supported: expected auto, cpu, cuda, cuda:N or mps")
    if not _device_available(device):
        raise UserError(f"device {name!r} is not available on this machine; "
                        "device=auto picks what is (CUDA, then MPS, then CPU)")
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def _device_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "mps":
        return _mps_available()
    return True
