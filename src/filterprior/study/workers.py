"""What each study worker process sets up first: die with the study process, and keep one device.

A worker whose parent is gone would go on training into the study directory and then block forever on
its result pipe. Linux kills it at once (prctl PR_SET_PDEATHSIG: SIGKILL when the parent dies, even by
kill -9); elsewhere a watchdog thread sees the parent change (os.getppid) within a second and exits.

On a machine with n visible CUDA GPUs the workers are spread over cuda:0 .. cuda:n-1, worker i on
cuda:(i mod n), each keeping its device for all of its cells (worker_devices: a pure function).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCHDOG_S = 1.0

_device: str | None = None  # this worker's device, set by init_worker; None: the config's own


def worker_devices(workers: int, gpus: int) -> list[str | None]:
    """The device of each of `workers` workers: cuda:(i mod gpus) with GPUs, else None (unchanged)."""
    if workers < 1:
        raise ValueError(f"workers {workers}: expected >= 1")
    if gpus < 1:
        return [None] * workers
    return [f"cuda:{i % gpus}" for i in range(workers)]


def workers_for(per_device: int | None, gpus: int, workers: int | None) -> int | None:
    """Worker count for --workers-per-device K: K per GPU (an explicit --workers caps it); None when the
    option does not apply (not given, or no GPU: then --workers or the CPU default decides)."""
    if per_device is None or gpus < 1:
        return workers
    total = per_device * gpus
    return total if workers is None else min(workers, total)


def visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install: run on the CPU as the engine would
        return 0


def pin_device(config_device: str) -> str:
    """The device a cell runs on in this worker: its pinned GPU where the config leaves the choice
    (auto or plain cuda), else the config's own (cpu, mps or an explicit cuda:N)."""
    if _device is not None and config_device in ("auto", "cuda"):
        return _device
    return config_device


def init_worker(parent_pid: int, devices) -> None:
    """ProcessPoolExecutor initializer: tie this process's life to the study's, then take a device."""
    global _device
    die_with_parent(parent_pid)
    try:
        chosen = devices.get(timeout=10) if devices is not None else ""
    except Exception:  # more workers started than devices queued (a replaced worker): keep the default
        chosen = ""
    _device = chosen or None


def die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still covers it
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_S)
        if os.getppid() != parent_pid:  # reparented: the study process is gone
            os._exit(1)
