"""Run configuration: dataclasses, loadable from YAML, overridable with dotted `key=value` pairs.

One job a module: `schema` (the sections, their keys and defaults), `loading` (YAML, dicts, overrides,
writing config.yaml; types checked and unknown keys refused there), `validation` (value ranges, checked
before a run writes anything) and `hashing` (the config hash the study and --resume compare). The
resolved config is written to `config.yaml` in the run directory, so a run can be repeated from that
file alone. `from filterprior.config import X` reaches everything public.
"""

from filterprior.config.hashing import LATER_KEYS, changed_keys, config_hash, legacy_config_hash, same_config
from filterprior.config.loading import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    override_key,
    packaged_config,
    save_config,
    valid_keys,
)
from filterprior.config.legacy import current_key
from filterprior.config.schema import (
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    AdversarialConfig,
    DataConfig,
    InitConfig,
    MMDConfig,
    ModelConfig,
    OptimConfig,
    PriorConfig,
    TrainConfig,
    effective_config,
    image_size_ok,
)
from filterprior.config.validation import AMP_MODES, POLICIES, TTA_MODES, check_ranges, validate_config

__all__ = [
    "AMP_MODES", "LATER_KEYS", "MAX_IMAGE_SIZE", "MIN_IMAGE_SIZE", "POLICIES", "TTA_MODES", "AdversarialConfig", "DataConfig",
    "InitConfig", "MMDConfig", "ModelConfig", "current_key",
    "OptimConfig", "PriorConfig", "TrainConfig", "apply_overrides", "check_ranges", "override_key", "config_from_dict",
    "config_hash", "config_to_dict", "effective_config", "image_size_ok", "load_config", "packaged_config",
    "save_config", "valid_keys", "validate_config", "changed_keys", "legacy_config_hash", "same_config",
]
