"""What a run ran on: written to env.json so a result can be traced back to its code and machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import filterprior
from filterprior.train.allocator import freed_memory_kept


def git_sha() -> str | None:
    """The commit of the filterprior checkout, if the package runs from one (with '+dirty' if modified)."""
    repo = Path(filterprior.__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info(device: torch.device, cfg: Any = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "filterprior": filterprior.__version__,
        "git_sha": git_sha(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "malloc_keeps_freed_memory": freed_memory_kept(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if cfg is not None:  # how the run's kernels were chosen (config keys amp, compile, deterministic)
        info.update({"amp": cfg.amp, "compile": cfg.compile, "deterministic": cfg.deterministic,
                     "cudnn_benchmark": torch.backends.cudnn.benchmark})
    if device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
