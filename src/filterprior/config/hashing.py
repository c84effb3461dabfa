"""A short, stable hash of a config: the study spots changed cells by it, --resume refuses a checkpoint
of another config by it."""

from __future__ import annotations

import hashlib
import json

from filterprior.config.loading import config_to_dict
from filterprior.config.schema import TrainConfig


# Keys added after runs were recorded. At their default they are left out of the hash, so a config
# written before they existed hashes as it did then (the study and --resume compare these hashes).
LATER_KEYS = ("data.policy", "data.randaugment_n", "data.randaugment_m", "data.mixup", "data.cutmix",
              "data.mix_prob", "ema")


def config_hash(cfg: TrainConfig) -> str:
    """Short stable hash of the resolved config (used by the study to spot changed cells)."""
    data = config_to_dict(cfg)
    defaults = config_to_dict(TrainConfig())
    for key in LATER_KEYS:
        *sections, name = key.split(".")
        node, default = data, defaults
        for section in sections:
            node, default = node[section], default[section]
        if node[name] == default[name]:
            del node[name]
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
