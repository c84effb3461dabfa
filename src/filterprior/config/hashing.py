"""A short, stable hash of a config: the study spots changed cells by it, --resume refuses a checkpoint
of another config by it.

The hash covers only the keys whose value differs from their default, so a key added later and left
at its default changes no hash: finished cells and checkpoints stay valid. Hashes recorded before this
rule (the legacy hash: every key, bar those of LATER_KEYS left at their default) still count as the same
config: `same_config` accepts either.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from filterprior.config.legacy import legacy_layout
from filterprior.config.loading import config_to_dict
from filterprior.config.schema import TrainConfig


def changed_keys(cfg: TrainConfig) -> dict[str, Any]:
    """{dotted key: value} for each key whose value differs from the default (model options included)."""
    return _differences(config_to_dict(cfg), config_to_dict(type(cfg)()), "")


def config_hash(cfg: TrainConfig) -> str:
    """Short stable hash of the keys that differ from their default (the default config hashes `{}`)."""
    return _short(changed_keys(cfg))


def same_config(stored_hash: str | None, cfg: TrainConfig) -> bool:
    """Whether a hash recorded with a run, checkpoint or study cell is that of `cfg`: today's hash, or
    the legacy one that finished work written before it carries."""
    return stored_hash is not None and stored_hash in (config_hash(cfg), legacy_config_hash(cfg))


def _differences(data: dict[str, Any], defaults: dict[str, Any], prefix: str) -> dict[str, Any]:
    changed = {}
    for key, value in data.items():
        default = defaults.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(default, dict):
            changed.update(_differences(value, default, f"{prefix}{key}."))
        elif isinstance(value, dict) and default is _MISSING:  # a model option with no default to compare
            changed.update(_differences(value, {}, f"{prefix}{key}."))
        elif value != default:
            changed[prefix + key] = value
    return changed


_MISSING = object()


def _short(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------- legacy

# Keys added after runs were recorded, before the hash left every default out. At their default they
# are left out of the legacy hash, so a config written before they existed hashes as it did then.
LATER_KEYS = ("data.policy", "data.randaugment_n", "data.randaugment_m", "data.mixup", "data.cutmix",
              "data.mix_prob", "ema", "amp", "compile", "deterministic",
              "sync_batchnorm")


def legacy_config_hash(cfg: TrainConfig) -> str:
    """The hash recorded before it covered only non-default keys: every key, bar LATER_KEYS at default,
    in the layout before the prior's section split (config/legacy.py)."""
    data = legacy_layout(cfg)
    defaults = legacy_layout(TrainConfig())
    for key in LATER_KEYS:
        *sections, name = key.split(".")
        node, default = data, defaults
        for section in sections:
            node, default = node[section], default[section]
        if node[name] == default[name]:
            del node[name]
    return _short(data)
