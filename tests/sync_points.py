"""Count the calls that would make the host wait for a GPU, while running on the CPU.

On CUDA, reading a value back (`.item()`, `bool(t)`, `.tolist()`, `float(t)`), a shape that depends on
the data (`.nonzero()`, boolean-mask indexing) or a copy to the host (`.cpu()`, `.numpy()`,
`.to("cpu")`) blocks the Python thread until the GPU has caught up. On the CPU nothing waits, so these
calls are invisible; a TorchFunctionMode sees every one of them, so a test can assert a training step
makes none (issue 14, part 2).

    with SyncPoints() as sync:
        one_training_step()
    assert sync.calls == [], sync.calls
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

# Tensor methods and torch functions whose result the host can only know after the device has run.
READS_BACK = {"item", "__bool__", "tolist", "__float__", "__int__", "__index__", "__complex__", "numpy", "cpu",
              "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive"}


def _is_host_copy(args, kwargs) -> bool:
    """`.to(...)` with a CPU target (device or string) as its first argument or `device=` keyword."""
    targets = list(args[1:2]) + [kwargs.get("device")]
    return any(isinstance(t, (str, torch.device)) and torch.device(t).type == "cpu" for t in targets if t is not None)


def _is_mask_index(args) -> bool:
    """`t[mask]` with a boolean tensor: the result's size depends on the data."""
    index = args[1] if len(args) > 1 else None
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


class SyncPoints(TorchFunctionMode):
    """Records, in order, the name of each call inside the block that would synchronise on a GPU."""

    def __init__(self, host_only=None) -> None:
        """`host_only()`, if given, returns tensors the caller knows live on the host on every device (such
        as a non-capturable Adam's step counters): reading them never waits for a GPU, so it is not counted."""
        super().__init__()
        self.calls: list[str] = []
        self.host_only = host_only

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if (name in READS_BACK or (name == "to" and _is_host_copy(args, kwargs))
                or (name == "__getitem__" and _is_mask_index(args))):
            if not (self.host_only and args and any(args[0] is t for t in self.host_only())):
                self.calls.append(name)
        return func(*args, **kwargs)
