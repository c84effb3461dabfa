"""The config's sections: the loss term (prior.*, with prior.adversarial.* and prior.mmd.* grouped) and
the bank initialisation (init.*). Configs, recipes and command lines of the older layout still load,
mapped to the new keys with a one-line note, and keep their recorded hashes."""

from __future__ import annotations

import yaml
import pytest

from filterprior.config import (
    TrainConfig,
    apply_overrides,
    config_hash,
    config_to_dict,
    legacy_config_hash,
    load_config,
    same_config,
    valid_keys,
)
from filterprior.config.legacy import RENAMED, legacy_layout
from filterprior.errors import UserError
from filterprior.study.grid import method_keys_overridden
from filterprior.study.methods import load_methods

# config.yaml of a finished run, as main wrote it before the split (prior: one flat section).
OLD_CONFIG = {
    "model": {"name": "airnet", "options": {}},
    "prior": {"name": "gaussian", "weight": 10.0, "warmup_epochs": 0.0, "layers": ["all"], "bank": None,
              "view": "slice", "normalize": "unit", "kernels_per_step": 128, "loss": "hinge", "d_arch": "mlp",
              "spectral_norm": True, "d_steps": 2, "d_lr": 0.001, "d_betas": [0.5, 0.9], "seed_faithful": False,
              "mmd_bandwidths": [1.0, 2.0], "init_from_bank": True, "init_mode": "network", "init_layers": [],
              "freeze": "first"},
    "epochs": 7,
}


def test_an_old_config_yaml_loads_into_the_new_sections_with_one_note(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(OLD_CONFIG))
    cfg = load_config(path)
    gan, init = cfg.prior.adversarial, cfg.init
    assert (gan.loss, gan.d_arch, gan.spectral_norm, gan.d_steps, gan.d_lr, gan.d_betas) == ("hinge", "mlp", True, 2,
                                                                                          0.001, [0.5, 0.9])
    assert cfg.prior.mmd.bandwidths == [1.0, 2.0] and cfg.prior.layers == ["all"] and cfg.prior.weight == 10.0
    assert (init.from_bank, init.mode, init.layers, init.freeze, init.bank) == (True, "network", [], "first", None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err
    assert "prior.loss is now prior.adversarial.loss" in err and "and 9 more old keys of the prior section" in err
    load_config(path)
    assert capsys.readouterr().err == ""  # once a process
    legacy = legacy_layout(cfg)  # what the legacy hash is computed on: the old section, exactly
    assert legacy["prior"] == OLD_CONFIG["prior"] and "init" not in legacy
    assert set(legacy) == set(config_to_dict(TrainConfig())) - {"init"}


def test_old_keys_on_the_command_line_map_to_the_new_ones(capsys):
    old = apply_overrides(TrainConfig(), ["prior.init_from_bank=true", "prior.freeze=all", "prior.d_steps=3",
                                          "prior.mmd_bandwidths=[2.0]", "prior.init_mode=network"])
    new = apply_overrides(TrainConfig(), ["init.from_bank=true", "init.freeze=all", "prior.adversarial.d_steps=3",
                                          "prior.mmd.bandwidths=[2.0]", "init.mode=network"])
    assert old == new and config_hash(old) == config_hash(new)
    assert "note: override: prior.init_from_bank is now init.from_bank" in capsys.readouterr().err


def test_an_old_key_beside_its_new_one_names_both(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("prior:\n  freeze: all\ninit:\n  freeze: first\n")
    with pytest.raises(UserError, match=rf"{path}.*prior\.freeze \(the old name\) and init\.freeze are both given"):
        load_config(path)


def test_the_sections_and_their_keys():
    keys = set(valid_keys())
    assert {"prior.adversarial.loss", "prior.adversarial.d_steps", "prior.mmd.bandwidths", "init.from_bank",
            "init.mode", "init.layers", "init.freeze", "init.bank"} <= keys
    assert not {old for old in RENAMED} & keys  # the old names are mapped, never listed as valid
    assert set(RENAMED.values()) <= keys
    with pytest.raises(UserError, match="valid keys are: .*init.from_bank"):
        apply_overrides(TrainConfig(), ["prior.init_form_bank=true"])


def test_a_methods_file_of_the_old_layout_keeps_its_hashes_and_beats_nothing_twice(tmp_path):
    old = tmp_path / "methods.yaml"
    old.write_text("transfer: [prior.init_from_bank=true, prior.init_mode=network, prior.freeze=all]\n")
    new = tmp_path / "new.yaml"
    new.write_text("transfer: [init.from_bank=true, init.mode=network, init.freeze=all]\n")
    a, b = (apply_overrides(TrainConfig(), list(load_methods(p)["transfer"].overrides)) for p in (old, new))
    assert a == b and config_hash(a) == config_hash(b) and legacy_config_hash(a) == legacy_config_hash(b)
    method = load_methods(old)["transfer"]  # the command line's new name beats the method's old one
    assert method_keys_overridden(method, ["init.freeze"]) == ["init.freeze"]


# Legacy hashes of every bundled method, recorded with the code before the split (8755e72) from the
# methods file of that time (old key names); today's methods file uses the new names.
RECORDED_METHODS = {
    "adversarial": "a0c51109ac85", "finetune-airnet": "7e7964a1d937", "gaussian": "dae1bee1be24",
    "init-from-bank": "00c4f1436f47", "init-frozen": "e260dd0bc009", "init-gaussian": "e53f004b4458",
    "l2": "7cc0b61b0d2b", "l2sp-airnet": "2cf012b64e97", "mmd": "c54e522bfcc6", "none": "75787ff5a1ac",
    "none-airnet": "dde62e7f5aae", "seed-faithful": "530e6d06f35c", "transfer": "d0eae4ecf67b",
}


def test_every_bundled_method_keeps_the_hash_recorded_before_the_split():
    methods = load_methods()
    assert set(RECORDED_METHODS) <= set(methods)  # methods added since have no legacy hash to keep
    for name in RECORDED_METHODS:
        cfg = apply_overrides(TrainConfig(), list(methods[name].overrides))
        assert legacy_config_hash(cfg) == RECORDED_METHODS[name], name
        assert same_config(RECORDED_METHODS[name], cfg)
