"""The benchmark scripts still run (on the embedded mini data), so their recorded commands stay true."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from filterprior.commands import main

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_seed_reproduction_with_per_epoch_test_diagnostic(tmp_path):
    results, per_epoch = tmp_path / "rows.csv", tmp_path / "per-epoch.csv"
    subprocess.run([sys.executable, str(BENCHMARKS / "seed_reproductions.py"), "--recipes", "simplecnn-fast",
                    "--epochs", "2", "--runs", str(tmp_path / "runs"), "--results", str(results),
                    "--test-every-epoch", str(per_epoch), "data.dataset=mini", "threads=1", "batch_size=32"],
                   check=True, capture_output=True, text=True)
    [row] = list(csv.DictReader(results.open()))
    epochs = list(csv.DictReader(per_epoch.open()))
    assert row["recipe"] == "simplecnn-fast" and row["epochs"] == "2"
    assert [e["epoch"] for e in epochs] == ["1", "2"]
    assert epochs[-1]["test_acc"] == row["test_acc"]  # the last epoch's reading is the run's one test
    times = list(csv.DictReader((Path(row["run_dir"]) / "epoch_times.csv").open()))
    assert [t["epoch"] for t in times] == ["1", "2"]
    assert all(float(t["cpu_s"]) > 0 and float(t["wall_s"]) > 0 for t in times)


def test_seed_reproduction_of_resnet18_imagenet_runs_on_mini(tmp_path):
    results = tmp_path / "rows.csv"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "seed_reproductions.py"), "--recipes",
                           "resnet18-imagenet-seed", "--epochs", "1", "--runs", str(tmp_path / "runs"),
                           "--results", str(results), "data.dataset=mini", "threads=1"],
                          check=True, capture_output=True, text=True)
    [row] = list(csv.DictReader(results.open()))
    assert row["recipe"] == "resnet18-imagenet-seed" and row["seed_acc"] == "0.7100"
    assert 0.0 <= float(row["test_acc"]) <= 1.0
    config = (Path(row["run_dir"]) / "config.yaml").read_text()
    assert "name: resnet18-imagenet" in config and "schedule: step" in config
    assert "epoch 1:" in done.stdout and "s CPU" in done.stdout


def test_seed_reproduction_refuses_an_unknown_recipe(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "seed_reproductions.py"), "--recipes", "nope",
                           "--results", str(tmp_path / "rows.csv")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown recipe 'nope'" in done.stderr and "simplecnn-seed" in done.stderr
    assert "Traceback" not in done.stderr


def test_tta_on_pool_reads_back_the_runs_own_pool_accuracy(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--data", "mini", "--model", "mynet-small", "--epochs", "1", "--threads", "1",
                 "batch_size=16", "filter_pictures=false", "data.val_per_class=3", "--out", str(run)]) == 0
    done = subprocess.run([sys.executable, str(BENCHMARKS / "tta_on_pool.py"), "--threads", "1", str(run)],
                          check=True, capture_output=True, text=True)
    val_acc = json.loads((run / "metrics.json").read_text())["val_acc"]
    assert f"pool {100 * val_acc:.2f}% -> " in done.stdout  # without TTA: the number the run reported
    assert "gain of flip TTA" in done.stdout


def test_augment_speed_times_every_policy_against_a_training_step(tmp_path):
    out = tmp_path / "speed.json"
    subprocess.run([sys.executable, str(BENCHMARKS / "augment_speed.py"), "--batch", "16", "--repeats", "2",
                    "--model", "mynet-small", "--json", str(out)], check=True, capture_output=True, text=True)
    rows = json.loads(out.read_text())["ms"]
    for policy in ("autoaugment", "randaugment", "trivialaugment"):
        assert rows[f"loader crop+flip+{policy}"] > 0
    assert rows["mynet-small training step"] > 0 and rows["mixup"] > 0


def test_step_time_compares_the_old_loop_the_new_one_and_bf16(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "step_time.py"), "--models", "simplecnn", "--batches",
                           "8", "--steps", "2", "--rounds", "1"], check=True, capture_output=True, text=True)
    bookkeeping, row = [json.loads(line) for line in done.stdout.splitlines()]
    assert set(bookkeeping["bookkeeping_us_per_step"]) == {"old", "new"}
    assert (row["model"], row["batch"], row["threads"]) == ("simplecnn", 8, 1)
    assert set(row["best_step_ms"]) == {"old", "new", "new-bf16"} and all(v > 0 for v in row["best_step_ms"].values())
