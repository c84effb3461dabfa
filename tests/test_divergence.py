"""After a divergence the kept checkpoint is one to resume from, and --resume may lower the learning rate
(issue 12 item 6). Through the command line, as a user meets it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml

from filterprior.train.checkpoint import first_nonfinite, load_checkpoint
from filterprior.train.resume import RESUME_MAY_CHANGE

ARGS = ["--data", "mini", "--model", "simplecnn", "--images-per-class", "2", "threads=1", "filter_pictures=false",
        "progress=false"]


def _train(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "filterprior", "train", *ARGS, *extra], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow  # four trainings in subprocesses: ~30 s alone, more beside other work
def test_a_diverged_run_keeps_a_good_checkpoint_and_resumes_with_a_lower_learning_rate(tmp_path):
    out = tmp_path / "run"
    assert _train("--out", str(out), "--epochs", "1", "optim.lr=1e-3").returncode == 0
    # At lr 1e10 epoch 2's one step overflows the weights while its loss (taken before the step) is still
    # fine; the epoch-2 checkpoint is finite but ruined, and epoch 3's loss shows it (about 1e36).
    diverged = _train("--out", str(out), "--resume", "--epochs", "4", "optim.lr=1e10")
    assert diverged.returncode == 2, diverged.stderr
    assert "resume changes epochs: 1 -> 4, optim.lr: 0.001 -> 10000000000.0" in diverged.stdout
    assert "Traceback" not in diverged.stderr and len(diverged.stderr.strip().splitlines()) == 1
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 1 and first_nonfinite(state) is None
    assert "the checkpoint of epoch 2 already gave a loss of" in diverged.stderr, diverged.stderr
    assert "the last good checkpoint (epoch 1) is kept" in diverged.stderr, diverged.stderr

    refused = _train("--out", str(out), "--resume", "optim.momentum=0.5")
    assert refused.returncode == 2
    assert "optim.momentum (0.9 -> 0.5)" in refused.stderr and ", ".join(RESUME_MAY_CHANGE) in refused.stderr

    resumed = _train("--out", str(out), "--resume", "optim.lr=1e-3")
    assert resumed.returncode == 0, resumed.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr"] == 0.001
    final = load_checkpoint(out / "checkpoint.pt")
    assert final["epoch"] == 4 and first_nonfinite(final) is None
    assert final["optimizer"]["param_groups"][0]["initial_lr"] == 0.001
    assert (out / "metrics.json").is_file() and not (out / "checkpoint.prev.pt").exists()


def test_a_run_diverging_from_the_start_keeps_no_checkpoint_of_nan_tensors(tmp_path):
    """Before the fix the kept epoch-2 checkpoint of this run held 23 tensors of NaN or inf."""
    out = tmp_path / "run"
    diverged = _train("--out", str(out), "--epochs", "4", "optim.lr=1e10")
    assert diverged.returncode == 2, diverged.stderr
    state = load_checkpoint(out / "checkpoint.pt")
    assert first_nonfinite(state) is None and state["epoch"] == 1
    # epoch 1's step already ruined the weights (finite, ~1e8): the error says so instead of calling it good
    assert "the only checkpoint (epoch 1" in diverged.stderr and "start afresh" in diverged.stderr


def test_first_nonfinite_names_the_tensor_and_ignores_integers():
    state = {"model": {"w": torch.ones(3), "steps": torch.tensor(5)}, "ema": None,
             "optimizer": {"state": {0: {"momentum_buffer": torch.tensor([1.0, float("inf")])}}}}
    assert first_nonfinite(state) == "optimizer.state.0.momentum_buffer"
    state["optimizer"]["state"][0]["momentum_buffer"][1] = 0.0
    assert first_nonfinite(state) is None
