"""Keys added later leave the hash of every config that does not set them as it was before they existed
(the study reruns a cell, and --resume refuses a checkpoint, when the hash changes)."""

from __future__ import annotations

import hashlib
import json

import pytest

from filterprior.config import LATER_KEYS, TrainConfig, apply_overrides, config_hash, config_to_dict
from filterprior.study.methods import load_methods


def hash_without(cfg: TrainConfig, keys) -> str:
    """The hash as computed before `keys` existed: the same JSON, without them."""
    data = config_to_dict(cfg)
    for key in keys:
        *sections, name = key.split(".")
        node = data
        for section in sections:
            node = node[section]
        del node[name]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def test_every_study_method_and_the_default_hash_as_before_the_new_keys():
    configs = [TrainConfig()] + [apply_overrides(TrainConfig(), list(m.overrides)) for m in load_methods().values()]
    assert len(configs) > 5
    for cfg in configs:
        assert config_hash(cfg) == hash_without(cfg, LATER_KEYS)


# Recorded with main at 5e73067, before the keys of LATER_KEYS existed. A key added without an entry in
# LATER_KEYS changes these and fails here.
RECORDED = {(): "75787ff5a1ac", ("data.dataset=mini", "model.name=airnet", "prior.name=l2-sp"): "19a615f8665c"}


@pytest.mark.parametrize("overrides,recorded", sorted(RECORDED.items()))
def test_hashes_recorded_before_the_new_keys_still_hold(overrides, recorded):
    assert config_hash(apply_overrides(TrainConfig(), list(overrides))) == recorded


@pytest.mark.parametrize("override", ["data.policy=randaugment", "data.randaugment_m=12", "data.mixup=0.2",
                                      "data.cutmix=1.0", "data.mix_prob=0.5", "ema=0.999"])
def test_a_new_key_away_from_its_default_changes_the_hash(override):
    assert config_hash(apply_overrides(TrainConfig(), [override])) != config_hash(TrainConfig())


def test_later_keys_name_real_keys():
    from filterprior.config import valid_keys

    assert set(LATER_KEYS) <= set(valid_keys())
