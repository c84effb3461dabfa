"""Checkpoints: a killed run resumes to the same end, a checkpoint carrying code is refused, and a diverged
run stops keeping its last good checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from filterprior.commands import main
from filterprior.errors import UserError
from filterprior.train import TrainingDiverged, train
from filterprior.train.checkpoint import load_checkpoint
from quick_run import quick_config


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "filterprior", *args]


@pytest.mark.slow
def test_resume_after_sigkill_ends_like_an_uninterrupted_run(tmp_path):
    args = ["train", "--quiet", "--data", "mini", "--model", "filternet-s2", "--epochs", "40", "--threads", "1",
            "batch_size=16", "filter_pictures=false", "model.options.dropout=0.2", "data.cutout=8"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cli(*args, "--out", str(full)), check=True, timeout=300)

    proc = subprocess.Popen(_cli(*args, "--out", str(killed)))
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        ckpt = killed / "checkpoint.pt"
        if ckpt.exists():
            try:
                if load_checkpoint(ckpt)["epoch"] >= 3:
                    break
            except UserError:  # being replaced right now
                pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"
    interrupted_at = load_checkpoint(killed / "checkpoint.pt")["epoch"]
    assert 3 <= interrupted_at < 40

    # The run's own config.yaml is used: no flag has to be repeated to resume.
    subprocess.run(_cli("train", "--quiet", "--out", str(killed), "--resume"), check=True, timeout=300)
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert a["test_acc"] == b["test_acc"]
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-6)
    wa, wb = load_file(str(full / "weights.safetensors")), load_file(str(killed / "weights.safetensors"))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)


class _Payload:
    """Unpickling this runs a shell command: the checkpoint loader must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_checkpoint_with_pickle_payload_is_refused(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": _Payload(marker), "epoch": 1}, run / "checkpoint.pt")
    with pytest.raises(UserError, match="refusing to unpickle"):
        load_checkpoint(run / "checkpoint.pt")
    code = main(["train", "--data", "mini", "--model", "mynet-small", "--epochs", "1", "--out", str(run), "--resume",
                 "--quiet"])
    assert code == 2
    assert "refusing to unpickle" in capsys.readouterr().err
    assert not marker.exists()


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    # lr 0.01 for two epochs, then multiplied by 1e12: the loss blows up in epoch 3.
    cfg = quick_config("epochs=5", "optim.schedule=step", "optim.step_epochs=2", "optim.gamma=1e12",
                       "optim.lr=0.01", "optim.momentum=0.0")
    with pytest.raises(TrainingDiverged, match=r"at step \d+ \(epoch 3\)") as info:
        train(cfg, tmp_path / "run", quiet=True)
    assert "last good checkpoint" in str(info.value)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 2
    assert not (tmp_path / "run" / "metrics.json").exists()
