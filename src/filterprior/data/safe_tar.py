"""Open tar archives and refuse members that could escape or are not plain files or folders.

We read members straight out of the archive (faster than extracting, and nothing is written), but
still refuse absolute paths, '..', links and devices: an archive holding them is not an image dataset
and may be hostile, and the error names the member so the user can see why.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from filterprior.errors import UserError


def check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Raise UserError unless `member` is a plain file or folder with a relative path inside the archive."""
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UserError(f"archive {archive}: member {name!r} has an absolute path; refusing to read it")
    if ".." in parts:
        raise UserError(f"archive {archive}: member {name!r} contains '..'; refusing to read it")
    if member.issym() or member.islnk():
        raise UserError(
            f"archive {archive}: member {name!r} is a link (to {member.linkname!r}); "
            "image archives may hold only plain files and folders"
        )
    if not (member.isfile() or member.isdir()):
        raise UserError(
            f"archive {archive}: member {name!r} is a device, pipe or other special file; "
            "image archives may hold only plain files and folders"
        )


def open_tar(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"{archive} is not a readable tar archive: {exc}") from exc


def iter_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (member name, bytes) for every regular file, checking every member first."""
    with open_tar(archive) as tar:
        try:
            for member in tar:
                check_member(archive, member)
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None  # regular files always have a handle
                    yield member.name, handle.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UserError(f"archive {archive} is damaged or truncated: {exc}") from exc


def first_member_name(archive: Path) -> str | None:
    """Name of the archive's first member (cheap: one header), used to tell archive kinds apart."""
    with open_tar(archive) as tar:
        try:
            member = tar.next()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UserError(f"archive {archive} is damaged or truncated: {exc}") from exc
        return None if member is None else member.name
