"""Continuing a run from its checkpoint, with the few config changes a resume may make.

A resume continues the run its config.yaml describes. It may change the keys of RESUME_MAY_CHANGE: they
steer how the rest of the run goes (a lower learning rate after a divergence, more epochs) or only how it
runs (threads, device, progress), never what the run was trained on or how. Every change is printed and
written to config.yaml; any other changed key is refused, naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from filterprior.config import TrainConfig, config_from_dict, config_to_dict, load_config, same_config, save_config
from filterprior.data.pipeline import with_absolute_data_paths
from filterprior.errors import UserError
from filterprior.train.checkpoint import CHECKPOINT_FILE
from filterprior.train.optim import lr_factor
from filterprior.train.setup import Trainee

RESUME_MAY_CHANGE = ("epochs", "optim.lr", "threads", "progress", "device", "val_every", "checkpoint_every")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "options":  # model.options is one value
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def resume_changes(run_dir: Path, cfg: TrainConfig, state: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (was, now)} for each key `cfg` changes against the config the checkpoint was written with (its
    own copy; config.yaml for checkpoints older than that); a change outside RESUME_MAY_CHANGE, or a
    checkpoint that matches neither, is refused."""
    checkpoint_path, saved_file = run_dir / CHECKPOINT_FILE, run_dir / "config.yaml"
    if isinstance(state.get("config"), dict):
        saved = config_from_dict(state["config"])
    elif saved_file.is_file():
        saved = load_config(saved_file)
    else:
        raise UserError(f"checkpoint {checkpoint_path} was written with another config, and {saved_file} is "
                        "missing to say what changed; start a new run directory")
    if not (same_config(state.get("config_hash"), saved)
            or same_config(state.get("config_hash"), with_absolute_data_paths(saved))):
        raise UserError(f"checkpoint {checkpoint_path} was written with another config than {saved_file}; "
                        "start a new run directory")
    was, now = _flat(config_to_dict(with_absolute_data_paths(saved))), _flat(config_to_dict(cfg))
    changes = {k: (was.get(k), now.get(k)) for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)}
    refused = [k for k in changes if k not in RESUME_MAY_CHANGE]
    if refused:
        named = ", ".join(f"{k} ({changes[k][0]!r} -> {changes[k][1]!r})" for k in refused)
        raise UserError(f"--resume would change {named} of the run in {run_dir}; a resume may change only "
                        f"{', '.join(RESUME_MAY_CHANGE)} (RESUME_MAY_CHANGE). Start a new run directory for "
                        "another config")
    return changes


def apply_resume_changes(run: Trainee, cfg: TrainConfig, changes: dict[str, tuple[Any, Any]], step: int,
                         run_dir: Path, say: Callable[[str], None]) -> None:
    """After loading the checkpoint: the schedule from the new base rate and length, from `step` on; the
    changed config written to config.yaml (atomically) and printed."""
    if not changes:
        return
    total_steps = cfg.epochs * run.steps_per_epoch
    run.scheduler.base_lrs = [cfg.optim.lr] * len(run.optimizer.param_groups)  # the loaded state has the old one
    for group in run.optimizer.param_groups:
        group["initial_lr"] = cfg.optim.lr
        group["lr"] = cfg.optim.lr * lr_factor(cfg.optim, step, run.steps_per_epoch, total_steps)
    save_config(cfg, run_dir / "config.yaml")
    say("resume changes " + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()))
