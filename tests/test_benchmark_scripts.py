"""The benchmark scripts still run (on the embedded mini data), so their recorded commands stay true
(seed_reproductions.py: test_benchmark_seed_reproductions.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from filterprior.commands import main

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_tta_on_pool_reads_back_the_runs_own_pool_accuracy(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--data", "mini", "--model", "mynet-small", "--epochs", "1", "--threads", "1",
                 "batch_size=16", "filter_pictures=false", "data.val_per_class=3", "--out", str(run)]) == 0
    done = subprocess.run([sys.executable, str(BENCHMARKS / "tta_on_pool.py"), "--threads", "1", str(run)],
                          check=True, capture_output=True, text=True)
    val_acc = json.loads((run / "metrics.json").read_text())["val_acc"]
    assert f"pool {100 * val_acc:.2f}% -> " in done.stdout  # without TTA: the number the run reported
    assert "gain of flip TTA" in done.stdout


def test_a_tuning_sweep_run_again_trains_only_what_it_has_not_recorded(tmp_path):
    results, runs = tmp_path / "tuning.csv", tmp_path / "runs"

    def sweep(*candidates: str, redo: bool = False) -> str:
        argv = [sys.executable, str(BENCHMARKS / "tune_small_data.py"), "--results", str(results), "--runs", str(runs),
                "--tag", "t", "--split-seeds", "0", "--base", str(tmp_path / "base.yaml")]
        argv += [item for c in candidates for item in ("--candidate", c)] + (["--redo"] if redo else [])
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    (tmp_path / "base.yaml").write_text("data: {dataset: mini, images_per_class: 2, val_per_class: 3}\n"
                                        "model: {name: mynet-small}\nepochs: 1\nbatch_size: 8\n")
    sweep("a:")
    first = results.read_text().splitlines()
    assert len(first) == 2 and (runs / "t-a-split0" / "metrics.json").is_file()
    printed = sweep("a:", "b:seed=1")  # a is recorded: only b trains
    rows = results.read_text().splitlines()
    assert rows[:2] == first and len(rows) == 3 and ",b,seed=1,0," in rows[2]
    assert "a split 0: recorded" in printed and "b split 0: recorded" not in printed
    sweep("a:", redo=True)  # asked for: trained again, one more row (the run resumes its finished checkpoint)
    assert len(results.read_text().splitlines()) == 4


@pytest.mark.slow
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
