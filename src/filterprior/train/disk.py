"""A full disk while a run writes becomes one clear line, not a traceback.

torch.save reports a failed write as `RuntimeError: [enforce fail at inline_container.cc:...] unexpected
pos ...` (its zip writer checks positions, not errno), everything else as `OSError: [Errno 28] No space
left on device`. Atomic writes (utils.atomic_path) leave the file being replaced as it was.
"""

from __future__ import annotations

import errno
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from filterprior.errors import UserError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """An error from writing a file that ran out of space (or quota), as OSError or torch's RuntimeError."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "No space left" in text or "inline_container" in text or "file write failed" in text)


@contextmanager
def disk_full_as_user_error(path: Path, kept: Callable[[], str]) -> Iterator[None]:
    """Turn a full disk while writing under `path` into a UserError naming the file and what is kept."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if not is_disk_full(exc):
            raise
        where = _final_name(getattr(exc, "filename", None)) or path
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"could not write {where}: no space left on the device ({reason}); {kept()}. "
                        "Free some space, then continue with --resume") from exc


def _final_name(filename) -> str | None:
    """The file an atomic write was making: `.metrics.json.abc123.tmp` -> `metrics.json`."""
    if not filename:
        return None
    path = Path(filename)
    match = re.fullmatch(r"\.(.+)\.[^.]+\.tmp", path.name)
    return str(path.with_name(match.group(1))) if match else str(path)
