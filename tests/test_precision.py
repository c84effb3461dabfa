"""Mixed precision, torch.compile and determinism switches (issue 14 part 3), on the CPU and mini data."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from filterprior.config import TrainConfig, apply_overrides, config_hash, validate_config
from filterprior.errors import UserError
from filterprior.train import train
from filterprior.train.checkpoint import load_checkpoint
from quick_run import assert_trained_alike

QUICK = ["data.dataset=mini", "model.name=simplecnn", "batch_size=16", "threads=1", "progress=false",
         "filter_pictures=false", "data.images_per_class=4", "data.val_per_class=0"]


def quick_config(*extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), QUICK + list(extra))


class _Crash(Exception):
    pass


def _crash_after_first_epoch(epoch, model):
    if epoch == 1:
        raise _Crash


def _weights(run):
    return load_file(str(run / "weights.safetensors"))


def test_bf16_trains_and_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    cfg = quick_config("epochs=3", "amp=bf16")
    whole = train(cfg, tmp_path / "whole", quiet=True)
    with pytest.raises(_Crash):
        train(cfg, tmp_path / "crashed", quiet=True, on_epoch_end=_crash_after_first_epoch)
    assert load_checkpoint(tmp_path / "crashed" / "checkpoint.pt")["epoch"] == 1
    resumed = train(cfg, tmp_path / "crashed", resume=True, quiet=True)
    assert resumed["test_acc"] == whole["test_acc"] and resumed["test_loss"] == whole["test_loss"]
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "crashed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # bf16 really ran: the same config in float32 ends with other weights, and the weights stay float32
    fp32 = train(quick_config("epochs=3"), tmp_path / "fp32", quiet=True)
    c = _weights(tmp_path / "fp32")
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert all(v.dtype == torch.float32 for v in a.values() if v.is_floating_point())
    assert fp32["config_hash"] != whole["config_hash"]
    env = json.loads((tmp_path / "whole" / "env.json").read_text())
    assert (env["amp"], env["compile"], env["deterministic"]) == ("bf16", False, False)


def test_fp16_trains_with_a_grad_scaler_kept_in_the_checkpoint(tmp_path):
    train(quick_config("epochs=1", "amp=fp16"), tmp_path / "run", quiet=True)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["scaler"]["scale"] > 0
    assert all(torch.isfinite(v).all() for v in _weights(tmp_path / "run").values() if v.is_floating_point())


@pytest.mark.slow  # inductor compiles C++ kernels: ~20 s with a warm cache, longer cold
def test_compile_trains_and_saves_plain_state_dicts(tmp_path):
    try:
        train(quick_config("epochs=1", "compile=true"), tmp_path / "compiled", quiet=True)
    except Exception as exc:  # noqa: BLE001 - only a missing compiler toolchain may skip
        if "C compiler" in str(exc) or "InvalidCxxCompiler" in type(exc).__name__:
            pytest.skip(f"this platform cannot compile: {exc}")
        raise
    train(quick_config("epochs=1"), tmp_path / "plain", quiet=True)
    compiled, plain = _weights(tmp_path / "compiled"), _weights(tmp_path / "plain")
    assert list(compiled) == list(plain)  # no _orig_mod. prefixes
    assert sorted(load_checkpoint(tmp_path / "compiled" / "checkpoint.pt")["model"]) == sorted(plain)
    # The same training, fused kernels: equal up to float rounding (measured: within 0.9 % in norm).
    assert_trained_alike(plain, compiled, rel=0.05)


def test_deterministic_switch_is_recorded_and_trains(tmp_path):
    try:
        train(quick_config("epochs=1", "deterministic=true"), tmp_path / "run", quiet=True)
        assert torch.are_deterministic_algorithms_enabled()
        env = json.loads((tmp_path / "run" / "env.json").read_text())
        assert env["deterministic"] is True and env["cudnn_benchmark"] is False
    finally:
        torch.use_deterministic_algorithms(False)
    train(quick_config("epochs=1"), tmp_path / "other", quiet=True)
    assert not torch.are_deterministic_algorithms_enabled()


def test_new_keys_at_their_defaults_leave_the_config_hash_unchanged_and_bad_values_are_named():
    cfg = quick_config()
    assert config_hash(cfg) == config_hash(quick_config("amp=off", "compile=false", "deterministic=false"))
    with pytest.raises(UserError, match="amp must be one of off, bf16, fp16, got 'fp8'"):
        validate_config(quick_config("amp=fp8"))
