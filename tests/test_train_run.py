"""A training run end to end on the embedded mini CIFAR-10 set (real data, real torch): what its directory
holds, that it learns, that the epoch callback and channels-last change nothing they should not."""

from __future__ import annotations

import json
import platform

import pytest
import torch
from safetensors.torch import load_file

from filterprior.train import train
from quick_run import assert_trained_alike, quick_config


def test_run_directory_tells_the_whole_story(tmp_path):
    metrics = train(quick_config("epochs=2", "val_every=1", "data.val_per_class=2"), tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    for name in ("config.yaml", "env.json", "metrics.csv", "metrics.json", "confusion.csv", "confusion.png",
                 "curves.png", "checkpoint.pt", "weights.safetensors", "weights.json",
                 "filters_start.png", "filters_end.png"):
        assert (run / name).is_file(), name
    # the previous checkpoint (a fallback after a divergence mid-run) goes when the run finishes
    assert not (run / "checkpoint.prev.pt").exists()
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


@pytest.mark.slow
def test_training_learns_something_on_real_images(tmp_path):
    """Trained on 100 real CIFAR-10 images, the model beats chance (10 %) on 1,000 test images."""
    cfg = quick_config("epochs=30", "model.name=filternet-s2", "optim.lr=0.05", "data.crop_padding=0")
    metrics = train(cfg, tmp_path / "run", quiet=True)
    assert metrics["test_acc"] > 0.15


def test_channels_last_trains_like_the_nchw_run(tmp_path):
    """Same seed, same data: only the memory format differs, so the runs differ by float rounding in the
    kernels' summation order, amplified by one epoch of SGD. Measured (filternet-s2, 1 epoch, CPU): test
    accuracy within 0.3 points, test loss within 4e-4 relative, every tensor within 5.4 % in norm (a
    BatchNorm bias; weights within 0.7 %; assert_trained_alike says why a norm). Stated tolerance: one
    point of accuracy, 1e-3 relative loss, 15 % in norm (a wrong layout is off by far more)."""
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
    assert_trained_alike(load_file(str(tmp_path / "nchw" / "weights.safetensors")),
                         load_file(str(tmp_path / "nhwc" / "weights.safetensors")), rel=0.15)


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


def test_each_epoch_line_says_the_time_left(tmp_path, capsys):
    """The console's line per epoch ends with the time the remaining epochs take at the pace so far; the
    last epoch's has none."""
    train(quick_config("epochs=2", "progress=false"), tmp_path / "run")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith("epoch ")]
    assert len(lines) == 2, lines
    assert lines[0].endswith(" left") and ("min" in lines[0].split("  ")[-1])
    assert not lines[1].endswith(" left")
