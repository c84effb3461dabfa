"""The training engine end to end on the embedded mini CIFAR-10 set (real data, real torch)."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from filterprior.commands import main
from filterprior.config import TrainConfig, apply_overrides
from filterprior.errors import UserError
from filterprior.train import TrainingDiverged, train
from filterprior.train.checkpoint import load_checkpoint
from filterprior.train.evaluate import predict

QUICK = ["data.dataset=mini", "model.name=mynet-small", "batch_size=16", "threads=1", "progress=false"]


def quick_config(*extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), QUICK + list(extra))


def test_run_directory_tells_the_whole_story(tmp_path):
    metrics = train(quick_config("epochs=2", "val_every=1", "data.val_per_class=2"), tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    for name in ("config.yaml", "env.json", "metrics.csv", "metrics.json", "confusion.csv", "confusion.png",
                 "curves.png", "checkpoint.pt", "weights.safetensors", "weights.json",
                 "filters_start.png", "filters_end.png"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test_acc"] == metrics["test_acc"]
    assert saved["test_images"] == 1000 and saved["train_images"] == 80  # 10 a class minus a pool of 2 a class
    # mini's test set has 100 images a class, so test accuracy is the mean of the per-class ones, and the
    # confusion matrix written beside it holds every test image once, its diagonal the correct ones
    assert len(saved["per_class_acc"]) == 10
    assert saved["test_acc"] == pytest.approx(sum(saved["per_class_acc"].values()) / 10)
    confusion = [list(map(int, line.split(",")[1:])) for line in (run / "confusion.csv").read_text().splitlines()[1:]]
    assert sum(map(sum, confusion)) == 1000
    assert sum(confusion[i][i] for i in range(10)) == round(1000 * saved["test_acc"])
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,step,time_s,lr,train_loss,train_acc,val_loss,val_acc")
    assert len(lines) == 3
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert env["malloc_keeps_freed_memory"] == (platform.libc_ver()[0] == "glibc")


def test_training_learns_something_on_real_images(tmp_path):
    """Trained on 100 real CIFAR-10 images, the model beats chance (10 %) on 1,000 test images."""
    cfg = quick_config("epochs=30", "model.name=filternet-s2", "optim.lr=0.05", "data.crop_padding=0")
    metrics = train(cfg, tmp_path / "run", quiet=True)
    assert metrics["test_acc"] > 0.15


def test_eval_reproduces_the_final_test_accuracy(tmp_path, capsys):
    metrics = train(quick_config("epochs=2"), tmp_path / "run", quiet=True)
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_acc"] == pytest.approx(metrics["test_acc"])
    assert main(["eval", str(tmp_path / "run" / "weights.safetensors"), "--json", "--data", "mini"]) == 0


def test_flip_tta_averages_the_logits_of_an_image_and_its_mirror():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))  # not mirror-symmetric
    images = torch.randn(6, 3, 4, 4)
    expected = (model(images) + model(images.flip(3))) / 2
    assert torch.allclose(predict(model, images, "flip"), expected)
    assert not torch.allclose(predict(model, images, "none"), expected)


def test_a_run_with_flip_tta_reports_it_and_eval_reproduces_it(tmp_path, capsys):
    metrics = train(quick_config("epochs=2", "tta=flip"), tmp_path / "run", quiet=True)
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tta"] == "flip" and result["test_acc"] == pytest.approx(metrics["test_acc"])
    assert main(["eval", str(tmp_path / "run"), "--json", "--tta", "none"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] == "none"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "filterprior", *args]


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


def test_unknown_config_key_lists_valid_keys(capsys):
    assert main(["train", "--data", "mini", "optim.learning_rate=0.1"]) == 2
    err = capsys.readouterr().err
    assert "optim.learning_rate" in err and "optim.lr" in err


def test_wrong_value_type_names_the_key():
    with pytest.raises(UserError, match="'epochs'"):
        apply_overrides(TrainConfig(), ["epochs=many"])


def test_yaml_config_with_unknown_key_names_the_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 0.1\n  momentun: 0.9\n")
    code = main(["train", "--config", str(path), "--data", "mini", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1  # one line, the file first
    assert "unknown config key 'optim.momentun'" in err and "optim.momentum" in err
    assert not (tmp_path / "run").exists()


def test_channels_last_trains_like_the_nchw_run(tmp_path):
    """Same seed, same data: only the memory format differs, so the runs differ by float rounding in the
    kernels' summation order, amplified by one epoch of SGD. Measured (filternet-s2, 1 epoch, CPU): every
    tensor within 0.4 % of its largest magnitude, test accuracy equal, test loss within 1e-5 relative.
    Stated tolerance: 2 %, one point of accuracy, 1e-3 relative loss (a wrong layout is off by far more)."""
    formats = []

    def record_format(epoch, model):
        weight = model[0].weight
        formats.append(weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous())

    nchw = train(quick_config("epochs=1", "model.name=filternet-s2"), tmp_path / "nchw", quiet=True)
    nhwc = train(quick_config("epochs=1", "channels_last=true", "model.name=filternet-s2"), tmp_path / "nhwc",
                 quiet=True, on_epoch_end=record_format)
    assert formats == [True]  # the flag did train in channels-last
    assert nhwc["test_acc"] == pytest.approx(nchw["test_acc"], abs=0.01)
    assert nhwc["test_loss"] == pytest.approx(nchw["test_loss"], rel=1e-3)
    wa = load_file(str(tmp_path / "nchw" / "weights.safetensors"))
    wb = load_file(str(tmp_path / "nhwc" / "weights.safetensors"))
    assert wa.keys() == wb.keys()
    for key, a in wa.items():
        if a.is_floating_point():
            assert float((a - wb[key]).abs().max()) <= 0.02 * float(a.abs().max()) + 1e-6, key


def test_an_evaluating_epoch_callback_leaves_the_run_unchanged(tmp_path):
    from filterprior.data.pipeline import prepare_data
    from filterprior.train.evaluate import evaluate

    cfg = quick_config("epochs=3", "data.crop_padding=4", "data.flip=true")
    plain = train(cfg, tmp_path / "plain", quiet=True)
    test_loader = prepare_data(cfg, torch.device("cpu")).test_loader
    seen = []

    def test_each_epoch(epoch, model):
        seen.append((epoch, evaluate(model, test_loader, 10).acc))

    watched = train(cfg, tmp_path / "watched", quiet=True, on_epoch_end=test_each_epoch)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert watched["test_acc"] == plain["test_acc"] == seen[-1][1]
