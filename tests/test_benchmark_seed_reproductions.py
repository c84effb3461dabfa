"""benchmarks/seed_reproductions.py still runs (on the embedded mini data): the seed projects' recipes, the
per-epoch test diagnostic, and its refusal of an unknown recipe."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
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


@pytest.mark.slow
def test_seed_reproduction_of_resnet18_imagenet_runs_on_mini(tmp_path):
    results = tmp_path / "rows.csv"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "seed_reproductions.py"), "--recipes",
                           "resnet18-imagenet-seed", "--epochs", "1", "--runs", str(tmp_path / "runs"),
                           "--results", str(results), "data.dataset=mini", "threads=1"],
                          check=True, capture_output=True, text=True)
    [row] = list(csv.DictReader(results.open()))
    assert row["recipe"] == "resnet18-imagenet-seed" and row["seed_acc"] == "0.7100"
    recorded = json.loads((Path(row["run_dir"]) / "metrics.json").read_text())["test_acc"]
    assert float(row["test_acc"]) == pytest.approx(recorded, abs=5e-5)  # the row holds what the run measured
    config = (Path(row["run_dir"]) / "config.yaml").read_text()
    assert "name: resnet18-imagenet" in config and "schedule: step" in config
    assert "epoch 1:" in done.stdout and "s CPU" in done.stdout


def test_seed_reproduction_refuses_an_unknown_recipe(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "seed_reproductions.py"), "--recipes", "nope",
                           "--results", str(tmp_path / "rows.csv")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown recipe 'nope'" in done.stderr and "simplecnn-seed" in done.stderr
    assert "Traceback" not in done.stderr
