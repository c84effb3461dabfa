"""The benchmark scripts still run (on the embedded mini data), so their recorded commands stay true
(seed_reproductions.py: test_benchmark_seed_reproductions.py)."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from filterprior.commands import main
from filterprior.results import read_results_csv

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_tta_on_pool_reads_back_the_runs_own_pool_accuracy(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--data", "mini", "--model", "mynet-small", "--epochs", "1", "--threads", "1",
                 "batch_size=16", "filter_pictures=false", "data.val_per_class=3", "--out", str(run)]) == 0
    table = tmp_path / "pool.csv"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "tta_on_pool.py"), "--threads", "1", "--shifts", "1,2",
                           "--diagonals", "1", "--csv", str(table), str(run)], check=True, capture_output=True, text=True)
    val_acc = json.loads((run / "metrics.json").read_text())["val_acc"]
    assert f"pool none {100 * val_acc:.2f}, flip " in done.stdout  # without TTA: the number the run reported
    assert "gain of flip-shift 2 over flip" in done.stdout and "gain of flip-shift-diagonal 1 over flip" in done.stdout
    rows = table.read_text().splitlines()
    assert rows[0] == "run,method,images_per_class,split_seed,set,tta,shift,acc"
    assert [r.split(",")[5:7] for r in rows[1:]] == [["none", "0"], ["flip", "0"], ["flip-shift", "1"], ["flip-shift", "2"],
                                                    ["flip-shift-diagonal", "1"]]
    again = subprocess.run([sys.executable, str(BENCHMARKS / "tta_on_pool.py"), "--csv", str(table), str(run)],
                           capture_output=True, text=True)
    assert again.returncode != 0 and "exists; name a new file" in again.stderr


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


def test_sweeps_starting_at_once_on_a_new_results_file_write_one_header(tmp_path):
    # The GPU script starts nine sweeps on one new CSV: each must find a header, and only one be written.
    create = runpy.run_path(str(BENCHMARKS / "tune_small_data.py"))["create_with_header"]
    results = tmp_path / "new" / "tuning.csv"
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def race() -> None:
        start.wait()
        try:
            create(results)
        except BaseException as error:  # a thread's exception would otherwise be only a pytest warning
            failures.append(error)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert results.read_text().splitlines() == ["date,tag,candidate,overrides,split_seed,val_acc,wall_time_s"]
    assert [p.name for p in results.parent.iterdir()] == ["tuning.csv"]  # no temporary file left
    results.write_text(results.read_text() + "a row\n")
    create(results)  # an existing file is left as it is
    assert results.read_text().splitlines()[1] == "a row"


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


def _results_csv(path: Path, method: str, accs: dict[int, float]) -> Path:
    from filterprior.results import ResultRow, write_results_csv

    rows = [ResultRow(method=method, images_per_class=50, split_seed=seed, test_acc=acc, val_acc=acc,
                      wall_time_s=1.0, config_hash="c0", run_dir=f"{method}/n50/split{seed}") for seed, acc in accs.items()]
    return write_results_csv(rows, path)


def test_merging_studies_pairs_a_method_with_a_baseline_another_study_recorded(tmp_path):
    old = _results_csv(tmp_path / "old.csv", "none-airnet", {0: 0.50, 1: 0.40, 2: 0.45})
    new = _results_csv(tmp_path / "new.csv", "none-strong-airnet", {0: 0.56, 1: 0.43, 2: 0.49})
    script = [sys.executable, str(BENCHMARKS / "merge_studies.py")]
    done = subprocess.run([*script, str(old), str(new), "-o", str(tmp_path / "merged.md")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    row = next(line for line in (tmp_path / "merged.md").read_text().splitlines() if line.startswith("| none-strong"))
    assert "+4.33 ± 0.88" in row and "3/3" in row  # differences 6, 3, 4 points, paired by split seed
    # the same split recorded again with other figures is refused by name, not averaged or picked from
    clash = _results_csv(tmp_path / "clash.csv", "none-airnet", {1: 0.41})
    done = subprocess.run([*script, str(old), str(new), str(clash)], capture_output=True, text=True)
    assert done.returncode == 2 and "none-airnet at 50 images a class, split seed 1, differs between" in done.stderr
    same = _results_csv(tmp_path / "same.csv", "none-airnet", {1: 0.40})  # the same cell retrained: kept once
    done = subprocess.run([*script, str(old), str(new), str(same)], capture_output=True, text=True)
    assert done.returncode == 0 and "| none-airnet | 3 |" in done.stdout
    # --baseline: every method gains over the one named, here the old baseline over the new one
    done = subprocess.run([*script, str(old), str(new), "--baseline", "none-strong-airnet"], capture_output=True, text=True)
    row = next(line for line in done.stdout.splitlines() if line.startswith("| none-airnet"))
    assert "-4.33 ± 0.88" in row and "0/3" in row
    done = subprocess.run([*script, str(old), "--baseline", "none-strong-airnet"], capture_output=True, text=True)
    assert done.returncode == 2 and "--baseline none-strong-airnet: no finished run of it" in done.stderr


def test_comparing_two_recipes_of_one_method_pairs_them_by_split_and_refuses_a_mixture(tmp_path):
    from filterprior.results import ResultRow, write_results_csv

    def study(path, accs, recipe="r1"):
        rows = [ResultRow(method="m", images_per_class=50, split_seed=seed, test_acc=test, val_acc=val, wall_time_s=9.0,
                          config_hash=f"c{seed}", run_dir=f"m/n50/split{seed}", recipe_hash=recipe)
                for seed, (test, val) in accs.items()]
        return write_results_csv(rows, path)

    old = study(tmp_path / "old.csv", {0: (0.50, 0.52), 1: (0.40, 0.41), 2: (0.45, 0.47), 3: (0.40, 0.40)})
    new = study(tmp_path / "new.csv", {0: (0.56, 0.53), 1: (0.43, 0.45), 2: (0.49, 0.46)}, recipe="r2")
    script = [sys.executable, str(BENCHMARKS / "compare_recipes.py"), f"{new}:m", f"{old}:m", "--size", "50"]
    # the pool column by default, over the splits both ran (3 is old's only): differences 1, 4, -1 points
    done = subprocess.run(script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "paired gain over 3 splits: +1.33 ± 1.45 (se)" in done.stdout and "up on 2/3" in done.stdout
    done = subprocess.run([*script, "--column", "test", "--splits", "0,1"], capture_output=True, text=True)
    assert "paired gain over 2 splits: +4.50" in done.stdout and "| 2 |" not in done.stdout
    done = subprocess.run([*script, "--splits", "3"], capture_output=True, text=True)
    assert done.returncode == 2 and "split seeds [3] are not finished on both sides" in done.stderr
    # one side holding two recipes of the method is refused, not averaged
    mixed = study(tmp_path / "mixed.csv", {0: (0.5, 0.5)}, recipe="r1")
    text = mixed.read_text() + (study(tmp_path / "x.csv", {1: (0.4, 0.4)}, recipe="r9").read_text().splitlines()[1] + "\n")
    mixed.write_text(text)
    done = subprocess.run([sys.executable, str(BENCHMARKS / "compare_recipes.py"), f"{mixed}:m", f"{old}:m", "--size", "50"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "has 2 recipes (r1, r9)" in done.stderr
    done = subprocess.run([sys.executable, str(BENCHMARKS / "compare_recipes.py"), f"{new}:other", f"{old}:m", "--size", "50"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no finished run of other at 50 images a class" in done.stderr


def test_the_standing_picture_is_drawn_from_the_recorded_results_files(tmp_path):
    script = [sys.executable, str(BENCHMARKS / "plot_standing.py"), "-o", str(tmp_path / "standing.png")]
    done = subprocess.run(script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "standing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a results file without the row it should hold is named, not plotted as nothing
    results = tmp_path / "results"
    shutil.copytree(BENCHMARKS / "results", results, ignore=shutil.ignore_patterns("*.png", "*.json"))
    rows = runpy.run_path(str(BENCHMARKS / "plot_standing.py"))["ROWS"]  # whichever file holds the bank's row now
    name, method = rows["the bank's best, chosen on the pool"][50]
    _results_csv(results / name, "another-method", {0: 0.5})
    done = subprocess.run([*script, "--results-dir", str(results)], capture_output=True, text=True)
    assert done.returncode == 2
    assert f"{name}: no finished run of {method} at 50 images a class" in done.stderr


def test_a_study_retested_with_another_tta_keeps_its_runs_and_names_a_new_recipe(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "--data", "mini", "--sizes", "2", "--methods", "none", "--split-seeds", "0,1", "--epochs", "1",
                 "--workers", "1", "--out", str(out), "threads=1", "data.val_per_class=3", "filter_pictures=false"]) == 0
    runs = sorted(str(p) for p in out.glob("none/n2/split*"))
    script = [sys.executable, str(BENCHMARKS / "tta_on_pool.py"), "--threads", "1", "--shifts", "1"]
    subprocess.run([*script, "--csv", str(tmp_path / "pool.csv"), *runs], check=True, capture_output=True)
    subprocess.run([*script, "--test", "--csv", str(tmp_path / "test.csv"), *runs], check=True, capture_output=True)
    retest = [sys.executable, str(BENCHMARKS / "retest_with_tta.py"), str(out / "results.csv"), "--tta", "flip-shift",
              "--shift", "1", "--pool", str(tmp_path / "pool.csv"), "--test", str(tmp_path / "test.csv")]
    done = subprocess.run([*retest, "-o", str(tmp_path / "retested.csv")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    old, new = (read_results_csv(p) for p in (out / "results.csv", tmp_path / "retested.csv"))
    test_rows = [r.split(",") for r in (tmp_path / "test.csv").read_text().splitlines()[1:]]
    assert [r.run_dir for r in new] == [r.run_dir for r in old] and len(new) == 2
    for before, after in zip(old, new):
        wanted = next(float(r[7]) for r in test_rows if r[0].endswith(before.run_dir) and r[5:7] == ["flip-shift", "1"])
        assert after.test_acc == wanted and after.wall_time_s == before.wall_time_s
        assert after.recipe_hash != before.recipe_hash and after.config_hash != before.config_hash
    assert new[0].recipe_hash == new[1].recipe_hash  # one recipe over its split seeds, as a study records it
    # the pool CSV named as the test CSV is refused: a retested row never carries pool figures as test ones
    swapped = [*retest[:-4], "--pool", str(tmp_path / "pool.csv"), "--test", str(tmp_path / "pool.csv")]
    done = subprocess.run([*swapped, "-o", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert done.returncode == 1 and "reads the 'pool' set; expected 'test'" in done.stderr
    done = subprocess.run([*retest, "-o", str(tmp_path / "retested.csv")], capture_output=True, text=True)
    assert done.returncode == 1 and "exists; name a new file" in done.stderr


def test_eval_speed_times_every_tta_mode_against_the_contiguous_pass():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "eval_speed.py"), "--model", "mynet-small", "--images", "8",
                           "--batches", "4"], check=True, capture_output=True, text=True)
    assert "x the contiguous pass" in done.stdout
    assert all(f"tta={mode}" in done.stdout for mode in ("none", "flip", "flip-shift"))


def test_a_study_retested_from_recorded_figures_carries_the_hashes_a_study_with_that_tta_records(tmp_path):
    common = ["--data", "mini", "--sizes", "2", "--methods", "none", "--split-seeds", "0,1", "--workers", "1"]
    keys = ["threads=1", "data.val_per_class=3", "filter_pictures=false", "epochs=1"]
    assert main(["study", *common, "--out", str(tmp_path / "a"), *keys]) == 0
    assert main(["study", *common, "--out", str(tmp_path / "b"), *keys, "tta=flip-shift-diagonal"]) == 0
    script = [sys.executable, str(BENCHMARKS / "retest_from_recorded.py"), str(tmp_path / "a" / "results.csv"),
              "--method", "none", "--size", "2", "--tta", "flip-shift-diagonal", "--data", "mini",
              *[f"--override={k}" for k in keys]]
    done = subprocess.run([*script, "--val", "40,60", "--test", "35,55.5", "-o", str(tmp_path / "r.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    retested, tested = read_results_csv(tmp_path / "r.csv"), read_results_csv(tmp_path / "b" / "results.csv")
    assert [(r.config_hash, r.recipe_hash) for r in retested] == [(r.config_hash, r.recipe_hash) for r in tested]
    assert [(r.val_acc, r.test_acc) for r in retested] == [(0.4, 0.35), (0.6, 0.555)]
    # a rebuild that is not the study's (another dataset) stops before writing; so does a wrong count of figures
    wrong = ["cifar10" if item == "mini" else item for item in script]
    done = subprocess.run([*wrong, "--val", "40,60", "--test", "35,55", "-o", str(tmp_path / "w.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "does not give back the recorded hashes" in done.stderr
    assert not (tmp_path / "w.csv").exists()
    done = subprocess.run([*script, "--val", "40", "--test", "35,55", "-o", str(tmp_path / "w.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "--val gives 1 values; expected 2" in done.stderr
