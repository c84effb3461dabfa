"""Image folders: `train/<class>/*` and optionally `test/<class>/*`, as a directory or a tar archive.

Rules (also in load_data's docstring):
- classes are the folder names under train/, sorted alphabetically; label i is classes[i];
- names starting with '.' (files or folders, at any depth) are ignored, and so are files whose suffix
  is not an image suffix (IMAGE_SUFFIXES) and files lying directly in train/ or test/;
- images in sub-folders of a class folder belong to that class;
- a directory or archive whose only top-level entry is a folder holding train/ is read from that folder;
- every image is converted to RGB and resized to image_size x image_size (Pillow bilinear, antialiased);
- a class folder (under train/ or test/) without images is an error naming it, and so is a test/ folder
  without images: either would otherwise be skipped without a word;
- without test/, round(test_fraction * n) images of each class are held out as test, the first in the
  order of their content's sha256 (holdout.py): adding files moves the split only at its edge.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

import numpy as np

from filterprior.data import limits
from filterprior.data.decode import decode_images
from filterprior.data.holdout import content_key, held_out
from filterprior.data.image_data import ImageData
from filterprior.data.limits import describe_bytes
from filterprior.data.safe_tar import read_members
from filterprior.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
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


def _folders_of(files: list[str], folders: list[str]) -> set[str]:
    """Every non-hidden folder: those listed, and the parents of every file (archives may list no folders)."""
    out = {PurePosixPath(f).as_posix() for f in folders if not _is_hidden(f)}
    for name in files:
        if not _is_hidden(name):
            out.update(p.as_posix() for p in PurePosixPath(name).parents if p.as_posix() != ".")
    return out


def _group(names: list[str], folders: set[str], where: str) -> dict[str, dict[str, list[str]]]:
    """{'train': {class: [names]}, 'test': {...}} from image names, following the rules above.

    `folders` (every non-hidden folder) shows class folders that hold no image, which are refused.
    """
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
    empty = []
    for folder in sorted(folders):
        parts = PurePosixPath(folder[len(prefix) :]).parts if folder.startswith(prefix) else ()
        if len(parts) == 2 and parts[0] in groups and parts[1] not in groups[parts[0]]:
            empty.append(folder)
    if empty:
        raise UserError(
            f"{where}: class folder(s) {empty} hold no images (image files end in "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}; names starting with '.' are ignored); "
            "add images or remove the folder(s)"
        )
    if f"{prefix}test" in folders and not groups["test"]:
        raise UserError(
            f"{where}: {prefix}test/ holds no class folders with images; fill it ({LAYOUT_HELP}) or remove it "
            "to hold out data.test_fraction of train/ instead"
        )
    unknown = sorted(set(groups["test"]) - set(groups["train"]))
    if unknown:
        raise UserError(
            f"{where}: test/ has class folder(s) {unknown} that train/ lacks; "
            f"train/ has {sorted(groups['train'])}"
        )
    return groups


def build_from_files(
    files: dict[str, bytes],
    *,
    folders: list[str],
    other_files: list[str],
    name: str,
    source: str,
    source_hash: str,
    image_size: int,
    test_fraction: float,
    where: str,
) -> ImageData:
    """ImageData from {relative name: bytes} laid out as an image folder. `folders` and `other_files`
    (files not read: not images) show which folders exist, so an empty class folder can be refused."""
    names = _image_names(list(files))
    groups = _group(names, _folders_of([*files, *other_files], folders), where)
    classes = sorted(groups["train"])
    arrays = {}
    for split in ("train", "test"):
        items, labels = [], []
        for label, cls in enumerate(classes):
            for member in sorted(groups[split].get(cls, [])):
                items.append((f"{where}/{member}" if where else member, files[member]))
                labels.append(label)
        arrays[split] = (items, np.asarray(labels, dtype=np.int64))
    train_items, train_labels = arrays["train"]
    test_items, test_labels = arrays["test"]
    if not groups["test"]:
        keys = np.array([content_key(data) for _, data in train_items], dtype=np.uint64)
        held = held_out(train_labels, keys, test_fraction)
        test_items = [item for item, h in zip(train_items, held) if h]
        train_items = [item for item, h in zip(train_items, held) if not h]
        test_labels, train_labels = train_labels[held], train_labels[~held]
    return ImageData(
        name=name,
        classes=classes,
        train_images=decode_images(train_items, image_size),
        train_labels=train_labels,
        test_images=decode_images(test_items, image_size),
        test_labels=test_labels,
        source=source,
        source_hash=source_hash,
    )


def walk(folder: Path) -> tuple[list[str], list[str]]:
    """Relative POSIX names of every non-hidden file and every non-hidden folder under `folder`, sorted."""
    names, folders = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(folder)
        names.extend((rel / f).as_posix() for f in filenames if not f.startswith("."))
        folders.extend((rel / d).as_posix() for d in dirnames)
    return sorted(names), sorted(folders)


def folder_fingerprint(folder: Path) -> str:
    """Cheap identity of a directory tree: names, sizes and mtimes of its image files, and its folders'
    names (an empty class folder must not be hidden by a cache built before it existed); no reading."""
    digest = hashlib.sha256()
    names, folders = walk(folder)
    for name in _image_names(names):
        st = (folder / name).stat()
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for name in folders:
        digest.update(f"{name}/\n".encode())
    return digest.hexdigest()


def _read_image_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > limits.MAX_IMAGE_FILE_BYTES:
            raise UserError(
                f"image {path} is {describe_bytes(size)}, more than the "
                f"{describe_bytes(limits.MAX_IMAGE_FILE_BYTES)} an image file may have; refusing to read it"
            )
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read image {path}: {exc}") from exc


def load_folder(folder: Path, *, name: str, image_size: int, test_fraction: float) -> ImageData:
    """Read an image-folder directory; source_hash is a sha256 over (name, content sha256) of its images."""
    all_names, folders = walk(folder)
    files, digest, total = {}, hashlib.sha256(), 0
    for rel in _image_names(all_names):
        data = _read_image_file(folder / rel)
        total += len(data)
        if total > limits.MAX_TOTAL_BYTES:
            raise UserError(
                f"{folder}: its images add up to more than {describe_bytes(limits.MAX_TOTAL_BYTES)} "
                f"(at {rel}); that is more than filterprior reads for one dataset"
            )
        files[rel] = data
        digest.update(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return build_from_files(
        files,
        folders=folders,
        other_files=all_names,
        name=name,
        source=str(folder.resolve()),
        source_hash=digest.hexdigest(),
        image_size=image_size,
        test_fraction=test_fraction,
        where=str(folder),
    )


def _is_image_member(member: str) -> bool:
    return not _is_hidden(member) and PurePosixPath(member).suffix.lower() in IMAGE_SUFFIXES


def load_folder_archive(
    archive: Path, *, name: str, source_hash: str, image_size: int, test_fraction: float
) -> ImageData:
    """Read an image-folder tar archive member by member (no extraction; only image files are read; see
    safe_tar)."""
    contents = read_members(archive, _is_image_member, max_member_bytes=limits.MAX_IMAGE_FILE_BYTES,
                            what="image file")
    # PurePosixPath drops a leading './' (archives made with `tar czf x.tar.gz .`)
    files = {PurePosixPath(member).as_posix(): data for member, data in contents.files.items()}
    return build_from_files(
        files,
        folders=contents.folders,
        other_files=contents.skipped,
        name=name,
        source=str(archive.resolve()),
        source_hash=source_hash,
        image_size=image_size,
        test_fraction=test_fraction,
        where=str(archive),
    )
