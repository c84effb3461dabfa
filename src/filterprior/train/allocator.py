"""Keep freed memory inside the process (glibc), so a training step stops page-faulting its buffers in.

glibc serves every allocation above its mmap threshold (32 MB at most) with fresh pages from mmap and
hands them back on free. A training step allocates and frees the same large activation and gradient
buffers every step, so on CPU each step pays one page fault per 4 kB page of them: on filternet at
batch 128 that was ~12 % of a step (benchmarks/RESULTS.md, "Training throughput").
With mmap off for malloc and trimming off, freed blocks stay in the heap and are reused. The cost: the
process keeps its peak heap until it exits, which a training process reaches every step anyway.
Set FILTERPRIOR_MALLOC=default to leave glibc as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc once per process; True when it is tuned (False off glibc or when opted out)."""
    global _applied
    if _applied is None:
        _applied = os.environ.get("FILTERPRIOR_MALLOC", "") != "default" and _tune_glibc()
    return _applied


def freed_memory_kept() -> bool:
    """Whether keep_freed_memory() has tuned this process (for env.json); tunes nothing itself."""
    return bool(_applied)


def _tune_glibc() -> bool:
    mallopt = _glibc_mallopt()
    # Not reversible in practice: blocks already kept stay in the heap (a benchmark times glibc's default first).
    return mallopt is not None and mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1


def _glibc_mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        libc.gnu_get_libc_version  # present only in glibc (musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt
