"""The official CIFAR-10 / CIFAR-100 "python version" archives: pickled numpy batches.

Read either the .tar.gz (members are read in memory, nothing is extracted) or its extracted folder.
CIFAR-100 uses the fine labels (100 classes). Class names come from the meta pickle.
The pickles are loaded with an unpickler that only builds numpy arrays, lists, dicts and strings, so a
doctored archive cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filterprior.data import limits
from filterprior.data.decode import resize_array
from filterprior.data.image_data import ImageData
from filterprior.data.limits import describe_bytes
from filterprior.data.safe_tar import read_members
from filterprior.errors import UserError


@dataclass(frozen=True)
class OfficialLayout:
    name: str  # dataset name: cifar10 | cifar100
    folder: str  # top folder inside the archive
    train: tuple[str, ...]  # batch files holding the training images, in order
    test: str
    meta: str
    label_key: str  # key of the labels in each batch
    names_key: str  # key of the class names in the meta pickle


LAYOUTS = {
    "cifar10": OfficialLayout(
        "cifar10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": OfficialLayout(
        "cifar100", "cifar-100-python", ("train",), "test", "meta", "fine_labels", "fine_label_names"
    ),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Allows only what numpy arrays need; anything else in a CIFAR pickle is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict[str, object]:
    try:
        # latin1: the official files were written by Python 2 (str keys arrive as bytes otherwise)
        obj = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # any failure means "not a CIFAR batch"; say which file
        raise UserError(f"{where} is not a CIFAR python batch (pickle): {exc}") from exc
    if not isinstance(obj, dict):
        raise UserError(f"{where} is not a CIFAR python batch: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch(files: dict[str, bytes], member: str, layout: OfficialLayout, where: str):
    if member not in files:
        raise UserError(f"{where}: {member} is missing; is this the official {layout.name} archive?")
    batch = _unpickle(files[member], f"{where}: {member}")
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
        images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    except (KeyError, ValueError) as exc:
        raise UserError(f"{where}: {member} lacks CIFAR 32x32 images or {layout.label_key!r}: {exc}") from exc
    if len(images) != len(labels):
        raise UserError(f"{where}: {member} has {len(images)} images but {len(labels)} labels")
    return images, labels


def _build(files: dict[str, bytes], layout: OfficialLayout, *, source: str, source_hash: str,
           image_size: int, where: str) -> ImageData:
    if layout.meta not in files:
        raise UserError(f"{where}: {layout.meta} is missing; is this the official {layout.name} archive?")
    meta = _unpickle(files[layout.meta], f"{where}: {layout.meta}")
    if layout.names_key not in meta:
        raise UserError(f"{where}: {layout.meta} has no {layout.names_key!r} (the class names)")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[layout.names_key]]
    parts = [_batch(files, m, layout, where) for m in layout.train]
    train_images = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = _batch(files, layout.test, layout, where)
    for labels in (train_labels, test_labels):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise UserError(f"{where}: labels outside 0..{len(classes) - 1}")
    return ImageData(
        name=layout.name,
        classes=classes,
        train_images=np.ascontiguousarray(resize_array(train_images, image_size)),
        train_labels=train_labels,
        test_images=np.ascontiguousarray(resize_array(test_images, image_size)),
        test_labels=test_labels,
        source=source,
        source_hash=source_hash,
    )


def layout_of_folder(folder: Path) -> OfficialLayout | None:
    """The official layout an extracted folder follows, by the files it holds; None if neither."""
    for layout in LAYOUTS.values():
        if (folder / layout.meta).is_file() and (folder / layout.test).is_file():
            return layout
    return None


def layout_of_member(member_name: str | None) -> OfficialLayout | None:
    """The official layout of an archive, by the top folder of its first member."""
    if member_name is None:
        return None
    top = member_name.removeprefix("./").split("/")[0]
    return next((lay for lay in LAYOUTS.values() if lay.folder == top), None)


def folder_files(layout: OfficialLayout) -> list[str]:
    return [*layout.train, layout.test, layout.meta]


def load_official_archive(archive: Path, layout: OfficialLayout, *, source_hash: str,
                          image_size: int) -> ImageData:
    prefix = f"{layout.folder}/"
    wanted = {prefix + name for name in folder_files(layout)}
    contents = read_members(archive, lambda member: member.removeprefix("./") in wanted,
                            max_member_bytes=limits.MAX_BATCH_FILE_BYTES, what="batch file")
    files = {member.removeprefix("./")[len(prefix):]: data for member, data in contents.files.items()}
    return _build(files, layout, source=str(archive.resolve()), source_hash=source_hash,
                  image_size=image_size, where=str(archive))


def load_official_folder(folder: Path, layout: OfficialLayout, *, image_size: int) -> ImageData:
    """source_hash: sha256 over (file name, content sha256) of the batch and meta files."""
    files, digest = {}, hashlib.sha256()
    for name in folder_files(layout):
        path = folder / name
        if path.is_file():
            size = path.stat().st_size
            if size > limits.MAX_BATCH_FILE_BYTES:
                raise UserError(f"{path} is {describe_bytes(size)}, more than the "
                                f"{describe_bytes(limits.MAX_BATCH_FILE_BYTES)} a CIFAR batch file may have")
            files[name] = path.read_bytes()
            digest.update(f"{name}\0{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return _build(files, layout, source=str(folder.resolve()), source_hash=digest.hexdigest(),
                  image_size=image_size, where=str(folder))
