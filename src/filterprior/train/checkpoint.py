"""Checkpoints (plain tensors and dicts, loaded with weights_only=True) and exported weights."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from filterprior.errors import UserError
from filterprior.models.introspect import unwrap
from filterprior.utils import atomic_path, atomic_write_text, read_json

CHECKPOINT_FILE = "checkpoint.pt"  # in a run directory: the last epoch's state, what --resume continues from


def save_checkpoint(state: dict[str, Any], path: str | Path, keep_previous: bool = False) -> None:
    """Write atomically; with `keep_previous` the checkpoint it replaces stays as previous_path(path)
    (a hard link, else a copy; checkpoint.pt is never missing in between)."""
    path = Path(path)
    if keep_previous and path.is_file():
        with atomic_path(previous_path(path)) as tmp:
            try:
                os.link(path, tmp)
            except OSError:  # a file system without hard links
                shutil.copyfile(path, tmp)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def previous_path(path: str | Path) -> Path:
    """checkpoint.prev.pt beside checkpoint.pt: the one before it, to fall back to after a divergence."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def restore_previous(path: str | Path) -> int | None:
    """Put the previous checkpoint back in place of `path`; its epoch, or None when there is none."""
    previous = previous_path(path)
    if not previous.is_file():
        return None
    epoch = load_checkpoint(previous).get("epoch")
    os.replace(previous, path)
    return epoch


def first_nonfinite(state: Any, where: str = "") -> str | None:
    """The key path (e.g. `model.bn1.running_var`) of the first floating tensor in `state` holding NaN or
    inf, else None. One read from the device for the whole state, a walk only when something is wrong."""
    tensors = dict(_floating(state, where))
    if not tensors:
        return None
    flags = torch.stack([torch.isfinite(t).all() for t in tensors.values()])
    if bool(flags.all()):
        return None
    return next(path for path, ok in zip(tensors, flags.tolist()) if not ok)


def _floating(state: Any, where: str):
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() or state.is_complex():
            yield where or "tensor", state
        return
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, (list, tuple)) else ()
    for key, value in items:
        yield from _floating(value, f"{where}.{key}" if where else str(key))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with weights_only=True: a file carrying arbitrary pickled objects is refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - junk bytes surface as KeyError, EOFError, ... from the unpickler
        if isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in str(exc):  # the file asks to import code
            raise UserError(
                f"checkpoint {path} holds objects other than plain tensors and containers; "
                "refusing to unpickle it (it may carry code)"
            ) from exc
        raise UserError(f"checkpoint {path} could not be read ({_reason(exc)}); "
                        "it is damaged or not a checkpoint") from exc
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} holds a {type(state).__name__}, not a filterprior checkpoint (a dict)")
    return state


def _reason(exc: Exception) -> str:
    """The exception's type and its most telling line (torch's weights-only errors span many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[0] if lines else ""
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            detail = line.split("WeightsUnpickler error:", 1)[1].strip() or " ".join(lines[i + 1:i + 2])
            break
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def export_weights(model: torch.nn.Module, path: str | Path, metadata: dict[str, Any]) -> None:
    """weights.safetensors + weights.json (model name, options, classes, normalisation, ...)."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    atomic_write_text(path.with_suffix(".json"), json.dumps(metadata, indent=2))


def read_exported(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Exported weights and their metadata; `path` is the .safetensors file or a run directory."""
    path = Path(path)
    if path.is_dir():
        path = path / "weights.safetensors"
    elif path.is_file() and path.suffix != ".safetensors":
        raise UserError(f"{path} is not a run directory or a .safetensors file; expected one of those "
                        "(exported weights have their .json beside them)")
    sidecar = path.with_suffix(".json")
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist (expected a run directory or a .safetensors file)")
    if not sidecar.is_file():
        raise UserError(f"weights metadata {sidecar} is missing (it is written beside the weights by filterprior train)")
    meta = read_json(sidecar, "weights metadata")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise UserError(f"could not read exported weights {path}: {exc}") from exc
    for key in ("model", "num_classes"):
        if key not in meta:
            raise UserError(f"weights metadata {sidecar} lacks the key {key!r}")
    return tensors, meta
