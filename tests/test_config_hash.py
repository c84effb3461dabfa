"""The config hash covers only keys that differ from their default, so a key added later and left at its
default changes no hash; hashes recorded before that rule (the legacy hash) still count as the same
config for --resume and the study, and a changed key is still caught."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from filterprior.config import (
    LATER_KEYS,
    PriorConfig,
    TrainConfig,
    apply_overrides,
    changed_keys,
    config_hash,
    legacy_config_hash,
    same_config,
    valid_keys,
)
from filterprior.config.legacy import legacy_layout
from filterprior.errors import UserError
from filterprior.study.methods import load_methods
from filterprior.train import train
from filterprior.train.checkpoint import load_checkpoint, save_checkpoint


def sha12(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def test_the_hash_is_that_of_the_keys_away_from_their_default():
    assert changed_keys(TrainConfig()) == {}
    assert config_hash(TrainConfig()) == sha12({})
    cfg = apply_overrides(TrainConfig(), ["optim.lr=0.1", "prior.name=l2", "model.options.dropout=0.2",
                                          "epochs=30", "data.flip=true"])  # the last two: their defaults
    assert changed_keys(cfg) == {"optim.lr": 0.1, "prior.name": "l2", "model.options.dropout": 0.2}
    assert config_hash(cfg) == sha12({"optim.lr": 0.1, "prior.name": "l2", "model.options.dropout": 0.2})


def test_a_key_added_later_at_its_default_changes_no_hash():
    @dataclasses.dataclass
    class Later(TrainConfig):  # the config as it would be with one more key
        new_knob: float = 0.5

    for changes in ({}, {"epochs": 3, "prior": PriorConfig(name="mmd")}):
        assert config_hash(Later(**changes)) == config_hash(TrainConfig(**changes))
    assert config_hash(Later(new_knob=0.7)) != config_hash(TrainConfig())


@pytest.mark.parametrize("override", ["data.policy=randaugment", "optim.lr=0.01", "prior.weight=0.5", "ema=0.999",
                                      "model.options.dropout=0.1", "prior.layers=[all]"])
def test_a_key_away_from_its_default_changes_the_hash(override):
    cfg = apply_overrides(TrainConfig(), [override])
    assert config_hash(cfg) != config_hash(TrainConfig())
    assert not same_config(config_hash(TrainConfig()), cfg)
    assert not same_config(legacy_config_hash(TrainConfig()), cfg)


# ------------------------------------------------------------------------------------------ legacy


def hash_without(cfg: TrainConfig, keys) -> str:
    """The hash as computed before `keys` existed: the same JSON (in the layout before the prior's
    section split), without them."""
    data = legacy_layout(cfg)
    for key in keys:
        *sections, name = key.split(".")
        node = data
        for section in sections:
            node = node[section]
        del node[name]
    return sha12(data)


def test_every_study_method_and_the_default_keep_their_legacy_hash():
    methods = [list(m.overrides) for m in load_methods().values()]
    sets_later_key = lambda overrides: any(o.split("=")[0] in LATER_KEYS for o in overrides)  # noqa: E731
    configs = [TrainConfig()] + [apply_overrides(TrainConfig(), o) for o in methods if not sets_later_key(o)]
    assert len(configs) > 5
    for cfg in configs:  # later keys at their default: left out of the legacy hash
        assert legacy_config_hash(cfg) == hash_without(cfg, LATER_KEYS)
        assert same_config(legacy_config_hash(cfg), cfg) and same_config(config_hash(cfg), cfg)
    for overrides in filter(sets_later_key, methods):  # a later key set (strong-airnet's policy) is hashed
        cfg = apply_overrides(TrainConfig(), overrides)
        assert legacy_config_hash(cfg) != hash_without(cfg, LATER_KEYS)
        assert same_config(legacy_config_hash(cfg), cfg) and same_config(config_hash(cfg), cfg)
    assert set(LATER_KEYS) <= set(valid_keys())


# Recorded with main at 5e73067 (every key hashed), before the keys of LATER_KEYS existed.
RECORDED = {(): "75787ff5a1ac", ("data.dataset=mini", "model.name=airnet", "prior.name=l2-sp"): "19a615f8665c"}


@pytest.mark.parametrize("overrides,recorded", sorted(RECORDED.items()))
def test_hashes_recorded_by_older_versions_still_count_as_the_same_config(overrides, recorded):
    cfg = apply_overrides(TrainConfig(), list(overrides))
    assert legacy_config_hash(cfg) == recorded and same_config(recorded, cfg)
    assert not same_config(recorded, apply_overrides(cfg, ["epochs=31"]))


# ------------------------------------------------------------------------------------------ --resume


class _Stop(Exception):
    pass


def _stop_after_first_epoch(epoch, model):
    if epoch == 1:
        raise _Stop


def test_a_checkpoint_with_the_legacy_hash_resumes_and_a_changed_key_is_refused(tmp_path):
    cfg = apply_overrides(TrainConfig(), ["data.dataset=mini", "model.name=mynet-small", "batch_size=16",
                                          "threads=1", "progress=false", "epochs=2", "filter_pictures=false",
                                          "test=false", "data.val_per_class=0"])
    train(cfg, tmp_path / "full", quiet=True)
    with pytest.raises(_Stop):
        train(cfg, tmp_path / "cut", quiet=True, on_epoch_end=_stop_after_first_epoch)
    checkpoint = tmp_path / "cut" / "checkpoint.pt"
    state = load_checkpoint(checkpoint)
    assert state["config_hash"] == config_hash(cfg)
    state["config_hash"] = legacy_config_hash(cfg)  # as the version before wrote it
    save_checkpoint(state, checkpoint)
    with pytest.raises(UserError, match="would change optim.weight_decay"):  # optim.lr may change on resume
        train(apply_overrides(cfg, ["optim.weight_decay=0.01"]), tmp_path / "cut", resume=True, quiet=True)
    train(cfg, tmp_path / "cut", resume=True, quiet=True)
    full, resumed = load_file(str(tmp_path / "full" / "weights.safetensors")), load_file(str(tmp_path / "cut" / "weights.safetensors"))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
