"""Advisory file locks, so study processes sharing one output directory never train the same cell at
once (a restarted study against a stale one, or shards of a job array) and never write the tables over
each other's newer view.

fcntl.flock: the kernel drops a lock when its holder dies, even by kill -9, so a crashed study never
leaves a cell locked. Where fcntl does not exist (Windows) the locks do nothing: there, run one study
process per output directory. On NFS, Linux maps flock to NFS byte-range locks (NFSv4 or lockd needed).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

if os.name == "posix":  # flock exists there; a missing fcntl is a broken Python and fails loudly
    import fcntl
else:  # Windows: no flock, the locks do nothing (see above)
    fcntl = None

CELL_LOCK_FILE = ".lock"  # inside the cell's run directory; kept when the directory is cleared for a redo
TABLES_LOCK_FILE = ".tables.lock"  # in the study's output directory


class FileLock:
    """A non-blocking exclusive lock on `path` (the file is created, never deleted: deleting a lock file
    while another process waits on it would let a third lock a new file of the same name)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = False) -> bool:
        """True when this process now holds the lock; False when another process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def cell_lock(cell_dir: str | os.PathLike) -> FileLock:
    return FileLock(Path(cell_dir) / CELL_LOCK_FILE)


def locked_elsewhere(cell_dir: str | os.PathLike) -> bool:
    """Whether another process holds the cell's lock now (a cell that was never started is not locked)."""
    if fcntl is None or not (Path(cell_dir) / CELL_LOCK_FILE).is_file():
        return False
    lock = cell_lock(cell_dir)
    if not lock.acquire():
        return True
    lock.release()
    return False


@contextlib.contextmanager
def tables_lock(out_dir: str | os.PathLike) -> Iterator[None]:
    """Held while results.csv and summary.md are collected and written: the last writer then always
    collects after every other process's last cell finished, so no row goes missing."""
    lock = FileLock(Path(out_dir) / TABLES_LOCK_FILE)
    lock.acquire(blocking=True)
    try:
        yield
    finally:
        lock.release()
