"""Open tar archives and refuse members that could escape or are not plain files or folders.

We read members straight out of the archive (faster than extracting, and nothing is written), but
still refuse absolute paths, '..', links and devices: an archive holding them is not an image dataset
and may be hostile, and the error names the member so the user can see why.

Only the members a reader asks for are read into memory, each under a size cap (the tar header says the
size before anything is read), and all of them under a total cap (data/limits.py). The compressed stream
is then read to its end, so the gzip (bz2, xz) trailer is checked: tar stops at its end-of-archive
marker, and without this a flipped byte in a member would go unnoticed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from filterprior.data import limits
from filterprior.data.limits import describe_bytes
from filterprior.errors import UserError

# What a damaged compressed stream raises while it is read (tarfile does not wrap all of them).
_STREAM_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)
_COMPRESSED = (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile)


@dataclass
class ArchiveContents:
    files: dict[str, bytes] = field(default_factory=dict)  # member name -> bytes, for the wanted files
    folders: list[str] = field(default_factory=list)  # folder members
    skipped: list[str] = field(default_factory=list)  # files that were not wanted, hence not read


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


def _corrupt(archive: Path, exc: BaseException) -> UserError:
    text = str(exc).strip() or type(exc).__name__
    if "CRC check failed" in text:
        reason = "gzip CRC check failed"
    elif "Incorrect length" in text:
        reason = "gzip length check failed"
    elif isinstance(exc, EOFError):
        reason = f"truncated: {text}"
    else:
        reason = text
    return UserError(f"corrupt archive {archive} ({reason}); it is damaged or truncated: copy or download it again")


def read_members(
    archive: Path,
    wanted: Callable[[str], bool],
    *,
    max_member_bytes: int,
    what: str = "file",
) -> ArchiveContents:
    """Check every member; read the files `wanted(name)` accepts; verify the archive to its last byte.

    A wanted file larger than `max_member_bytes`, or wanted files adding up to more than
    limits.MAX_TOTAL_BYTES, stop the read with a UserError naming the member and the cap (`what` names
    the kind of file in that message). Files not wanted are skipped without being read.
    """
    contents, total = ArchiveContents(), 0
    with open_tar(archive) as tar:
        try:
            for member in tar:
                check_member(archive, member)
                if member.isdir():
                    contents.folders.append(member.name)
                    continue
                if not wanted(member.name):
                    contents.skipped.append(member.name)
                    continue
                if member.size > max_member_bytes:
                    raise UserError(
                        f"archive {archive}: {what} {member.name!r} is {describe_bytes(member.size)}, more than "
                        f"the {describe_bytes(max_member_bytes)} a {what} may have; refusing to read it"
                    )
                total += member.size
                if total > limits.MAX_TOTAL_BYTES:
                    raise UserError(
                        f"archive {archive}: its {what}s add up to more than "
                        f"{describe_bytes(limits.MAX_TOTAL_BYTES)} (at member {member.name!r}); "
                        "that is more than filterprior reads for one dataset"
                    )
                handle = tar.extractfile(member)
                assert handle is not None  # regular files always have a handle
                contents.files[member.name] = handle.read()
            _read_to_end(archive, tar)
        except _STREAM_ERRORS as exc:
            raise _corrupt(archive, exc) from exc
    return contents


def _read_to_end(archive: Path, tar: tarfile.TarFile) -> None:
    """Read what follows the last member: only zeros may (tar's end marker and padding), and reading a
    compressed stream to its end checks its trailer (CRC and length).

    tarfile ends the member list quietly at a header it cannot parse after the first one; the data
    that follows is then not zeros, and the archive is refused instead of read in part.
    """
    stream = tar.fileobj
    if not isinstance(stream, _COMPRESSED):
        stream.seek(tar.offset)  # a plain file: seeking back to the end marker is free
    # (a compressed stream is left where tarfile stopped: one block past tar.offset, the zero block
    # that ended the list; seeking back would decompress everything again)
    position = stream.tell()
    while block := stream.read(1 << 20):
        if block.strip(b"\0"):
            offset = position + len(block) - len(block.lstrip(b"\0"))
            raise UserError(
                f"corrupt archive {archive} (data after the end of the member list, at byte {offset} of the "
                "tar stream: an unreadable member header?); it is damaged: copy or download it again"
            )
        position += len(block)


def first_member_name(archive: Path) -> str | None:
    """Name of the archive's first member (cheap: one header), used to tell archive kinds apart."""
    with open_tar(archive) as tar:
        try:
            member = tar.next()
        except _STREAM_ERRORS as exc:
            raise _corrupt(archive, exc) from exc
        return None if member is None else member.name
