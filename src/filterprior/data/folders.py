"""Image folders: `train/<class>/*` and optionally `test/<class>/*`, as a directory or a tar archive.

Rules (also in load_data's docstring):
- classes are the folder names under train/, sorted alphabetically; label i is classes[i];
- names starting with '.' (files or folders, at any depth) are ignored, and so are files whose suffix
  is not an image suffix (IMAGE_SUFFIXES) and files lying directly in train/ or test/;
- images in sub-folders of a class folder belong to that class;
- a directory or archive whose only top-level entry is a folder holding train/ is read from that folder;
- every image is converted to RGB and resized to image_size x image_size (Pillow bilinear, antialiased);
- without test/, a stratified fraction `test_fraction` of each class (chosen by a fixed seed, 0) becomes
  the test set; the rest stays for training.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

import numpy as np

from filterprior.data.decode import decode_images
from filterprior.data.image_data import ImageData
from filterprior.data.safe_tar import iter_files
from filterprior.data.splits import hash_ranks
from filterprior.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
HOLDOUT_SEED = 0  # which images a folder without test/ holds out; fixed so the test set never moves
LAYOUT_HELP = "expected train/<class>/<image> (and optionally test/<class>/<image>)"


def _is_hidden(name: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(name).parts)


def _image_names(names: list[str]) -> list[str]:
    return [
        n for n in names if not _is_hidden(n) and PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES
    ]


def _layout_prefix(names: list[str], where: str) -> str:
    """'' when train/ is at the top, 'X/' when everything sits in one folder X holding train/."""
    parts = [PurePosixPath(n).parts for n in names]
    if any(p[0] == "train" for p in parts if len(p) > 1):
        return ""
    tops = {p[0] for p in parts}
    if len(tops) == 1 and any(len(p) > 2 and p[1] == "train" for p in parts):
        return f"{tops.pop()}/"
    raise UserError(f"{where}: no train/ folder with images found; {LAYOUT_HELP}")


def _group(names: list[str], where: str) -> dict[str, dict[str, list[str]]]:
    """{'train': {class: [names]}, 'test': {...}} from image names, following the rules above."""
    prefix = _layout_prefix(names, where)
    groups: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for name in names:
        if not name.startswith(prefix):
            continue
        parts = PurePosixPath(name[len(prefix) :]).parts
        if len(parts) >= 3 and parts[0] in groups:
            groups[parts[0]].setdefault(parts[1], []).append(name)
    if not groups["train"]:
        raise UserError(f"{where}: train/ holds no class folders with images; {LAYOUT_HELP}")
    unknown = sorted(set(groups["test"]) - set(groups["train"]))
    if unknown:
        raise UserError(
            f"{where}: test/ has class folder(s) {unknown} that train/ lacks; "
            f"train/ has {sorted(groups['train'])}"
        )
    return groups


def _holdout(labels: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the images held out as test: round(fraction * n) of each class, at least 1
    when the class has 2 or more images, chosen by rank of a seeded hash (deterministic, seed 0)."""
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_test = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        else:
            n_test = 0
        order = np.argsort(hash_ranks(HOLDOUT_SEED, idx), kind="stable")
        test[idx[order[:n_test]]] = True
    return test


def build_from_files(
    files: dict[str, bytes],
    *,
    name: str,
    source: str,
    source_hash: str,
    image_size: int,
    test_fraction: float,
    where: str,
) -> ImageData:
    """ImageData from {relative name: bytes} laid out as an image folder."""
    groups = _group(_image_names(list(files)), where)
    classes = sorted(groups["train"])
    arrays = {}
    for split in ("train", "test"):
        items, labels = [], []
        for label, cls in enumerate(classes):
            for member in sorted(groups[split].get(cls, [])):
                items.append((f"{where}/{member}" if where else member, files[member]))
                labels.append(label)
        arrays[split] = (decode_images(items, image_size), np.asarray(labels, dtype=np.int64))
    train_images, train_labels = arrays["train"]
    test_images, test_labels = arrays["test"]
    if not groups["test"]:
        held = _holdout(train_labels, test_fraction)
        test_images, test_labels = train_images[held], train_labels[held]
        train_images, train_labels = train_images[~held], train_labels[~held]
    return ImageData(
        name=name,
        classes=classes,
        train_images=np.ascontiguousarray(train_images),
        train_labels=train_labels,
        test_images=np.ascontiguousarray(test_images),
        test_labels=test_labels,
        source=source,
        source_hash=source_hash,
    )


def walk_files(folder: Path) -> list[str]:
    """Relative POSIX names of every non-hidden file under `folder`, sorted."""
    names = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(folder)
        names.extend((rel / f).as_posix() for f in filenames if not f.startswith("."))
    return sorted(names)


def folder_fingerprint(folder: Path) -> str:
    """Cheap identity of a directory tree: names, sizes and mtimes of its image files (no reading)."""
    digest = hashlib.sha256()
    for name in _image_names(walk_files(folder)):
        st = (folder / name).stat()
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_folder(folder: Path, *, name: str, image_size: int, test_fraction: float) -> ImageData:
    """Read an image-folder directory; source_hash is a sha256 over (name, content sha256) of its images."""
    names = _image_names(walk_files(folder))
    files, digest = {}, hashlib.sha256()
    for rel in names:
        try:
            data = (folder / rel).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read image {folder / rel}: {exc}") from exc
        files[rel] = data
        digest.update(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return build_from_files(
        files,
        name=name,
        source=str(folder.resolve()),
        source_hash=digest.hexdigest(),
        image_size=image_size,
        test_fraction=test_fraction,
        where=str(folder),
    )


def load_folder_archive(
    archive: Path, *, name: str, source_hash: str, image_size: int, test_fraction: float
) -> ImageData:
    """Read an image-folder tar archive member by member (no extraction; see safe_tar)."""
    # PurePosixPath drops a leading './' (archives made with `tar czf x.tar.gz .`)
    files = {
        PurePosixPath(member).as_posix(): data
        for member, data in iter_files(archive)
        if not _is_hidden(member)
    }
    return build_from_files(
        files,
        name=name,
        source=str(archive.resolve()),
        source_hash=source_hash,
        image_size=image_size,
        test_fraction=test_fraction,
        where=str(archive),
    )
