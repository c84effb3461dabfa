"""A study never loses or mixes results, and never leaks processes (issue 12 items 1, 8, 10 and the
study's newcomer items; issue 14 part 4: shards at once, workers spread over devices).

The tests use a stand-in for the engine that writes a real metrics.json; the tests of whole study
processes (killing a study, two shards at once) are in test_study_processes.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from filterprior.commands import main
from filterprior.config import TrainConfig
from filterprior.errors import UserError
from filterprior.study import read_results_csv, run_study
from filterprior.study import runner
from filterprior.study.locks import cell_lock
from filterprior.study.workers import pin_device, worker_devices, workers_for
from filterprior.utils import atomic_write_text


# ------------------------------------------------------------------------------ engine stand-ins
# Module-level so that worker processes started with 'spawn' can unpickle them.


def fake_train(cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False) -> dict:
    """A metrics.json whose accuracy depends on the cell; the call logged in the study directory."""
    run_dir = Path(run_dir)
    study_dir = run_dir.parents[2]
    with open(study_dir / "calls.log", "a") as log:
        log.write(f"{run_dir.relative_to(study_dir).as_posix()} {cfg.epochs} {cfg.device} {os.getpid()}\n")
    metrics = {"test_acc": 0.1 + cfg.epochs / 1000 + cfg.data.split_seed / 100, "val_acc": 0.2,
               "wall_time_s": 1.0, "epochs": cfg.epochs}
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics))
    return metrics


def fake_train_waiting_for_a_second_worker(cfg: TrainConfig, run_dir: Path, resume: bool = False,
                                            quiet: bool = False) -> dict:
    """fake_train, returning only once two workers have each started a cell (at most 60 s): otherwise, on a
    loaded machine, the worker that starts first can finish every cell before the other takes one."""
    metrics = fake_train(cfg, run_dir, resume, quiet)
    study_dir = Path(run_dir).parents[2]
    deadline = time.time() + 60
    while len({pid for *_, pid in calls(study_dir)}) < 2 and time.time() < deadline:
        time.sleep(0.05)
    return metrics


def train_failing_on_a_full_disk(cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False):
    """Fails, and leaves error.txt unwritable (a directory in its place, as a full disk would refuse it)."""
    (Path(run_dir) / "error.txt").mkdir()
    raise RuntimeError("no space left on device (simulated in the cell)")


def interrupted_train(cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False):
    raise KeyboardInterrupt


def calls(study: Path) -> list[list[str]]:
    log = study / "calls.log"
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


METHODS = "none: []\nl2: [prior.name=l2, prior.weight=0.001]\n"


@pytest.fixture
def methods_file(tmp_path: Path) -> Path:
    path = tmp_path / "methods.yaml"
    path.write_text(METHODS)
    return path


def study(out: Path, methods_file: Path, epochs: int = 15, **kwargs):
    options = dict(sizes=[2], split_seeds=[0, 1], workers=1, train_fn=fake_train, progress=False,
                   methods_file=methods_file)
    options.update(kwargs)
    return run_study(TrainConfig(epochs=epochs), out, **options)


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.json"))}


# ------------------------------------------------------------------ item 1: nothing lost, nothing mixed


def test_a_rerun_with_another_setting_refuses_and_deletes_nothing(tmp_path, methods_file):
    out = tmp_path / "study"
    study(out, methods_file, epochs=15)
    before = snapshot(out)
    with pytest.raises(UserError) as info:
        study(out, methods_file, epochs=16)
    message = str(info.value)
    assert "4 finished cell(s) run with another config" in message
    assert "none n=2 split=0" in message and "epochs: 15 → 16" in message
    assert "--overwrite" in message and "another --out" in message
    assert snapshot(out) == before and len(calls(out)) == 4  # nothing retrained, nothing deleted
    study(out, methods_file, epochs=16, overwrite=True)  # asked for: the cells are retrained at 16 epochs
    assert [c[1] for c in calls(out)[4:]] == ["16"] * 4
    assert {json.loads((out / r.run_dir / "metrics.json").read_text())["epochs"]
            for r in read_results_csv(out / "results.csv")} == {16}


def test_the_refusal_lists_each_kind_of_difference(tmp_path, methods_file):
    out = tmp_path / "study"
    study(out, methods_file)
    methods_file.write_text(METHODS.replace("prior.weight=0.001", "prior.weight=0.01"))
    with pytest.raises(UserError, match=r"l2 n=2 split=0, l2 n=2 split=1: prior\.weight: 0\.001 → 0\.01\. "
                                        r"Nothing was deleted"):
        study(out, methods_file)
    (out / "none/n2/split0/cell.json").unlink()  # a finished run without its record is not redone unasked
    with pytest.raises(UserError, match=r"none n=2 split=0: no config recorded in its cell\.json"):
        study(out, methods_file)


def test_an_interrupted_cell_is_still_redone_without_asking(tmp_path, methods_file):
    out = tmp_path / "study"
    study(out, methods_file)
    (out / "l2/n2/split1/metrics.json").unlink()  # killed mid-training: nothing finished to lose
    study(out, methods_file, epochs=16, split_seeds=[1], methods=["l2"])
    assert calls(out)[-1][:2] == ["l2/n2/split1", "16"]


def test_tables_never_average_runs_of_different_configs(tmp_path, methods_file):
    out = tmp_path / "study"
    study(out, methods_file, epochs=15, split_seeds=[0, 1, 2])
    study(out, methods_file, epochs=16, split_seeds=[0, 1], overwrite=True)  # split 2 keeps its 15 epochs
    rows = read_results_csv(out / "results.csv")
    assert len(rows) == 6 and len({r.recipe_hash for r in rows if r.method == "none"}) == 2
    summary = (out / "summary.md").read_text()
    assert "Runs of different configs are never averaged." in summary
    assert "its recipe hash (in cell.json and results.csv; each run's config.yaml has the config): l2 at 2 images " \
           "per class; none at 2 images per class." in summary
    labelled = [line for line in summary.splitlines() if line.startswith("| none [")]
    assert sorted(line.split(" | ")[1] for line in labelled) == ["1", "2"]  # n: 1 run at 15, 2 at 16 epochs


def test_cells_recorded_before_recipe_hashes_existed_still_average_with_new_ones(tmp_path, methods_file):
    out = tmp_path / "study"
    study(out, methods_file, split_seeds=[0])
    for cell_file in out.glob("*/n2/split0/cell.json"):  # as an older filterprior wrote them
        record = json.loads(cell_file.read_text())
        del record["recipe_hash"]
        cell_file.write_text(json.dumps(record))
    study(out, methods_file, split_seeds=[0, 1])  # same config: split 0 kept, split 1 added
    assert [c[0] for c in calls(out)[2:]] == ["none/n2/split1", "l2/n2/split1"]
    rows = read_results_csv(out / "results.csv")
    assert len({r.recipe_hash for r in rows if r.method == "none"}) == 1
    assert "| none | 2 |" in (out / "summary.md").read_text()


def test_demo_with_other_epochs_refuses_to_replace_a_finished_demo(tmp_path, capsys):
    from filterprior.commands.demo import BEST_METHOD, demo_config

    out = tmp_path / "demo"
    # A finished 200-epoch demo (its runs from the stand-in engine: the refusal comes before any training).
    run_study(demo_config(), out, sizes=[10], methods=["none", BEST_METHOD], split_seeds=[0], workers=1,
              train_fn=fake_train, progress=False)
    before = snapshot(out)
    assert main(["demo", "--epochs", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a finished demo run with other settings" in err and "epochs: 200 → 3" in err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert snapshot(out) == before


# ------------------------------- item 8: locks (killing a study ends its workers: test_study_processes.py)


def test_a_cell_locked_by_another_process_is_skipped_not_raced(tmp_path, methods_file, capsys):
    out = tmp_path / "study"
    (out / "l2/n2/split0").mkdir(parents=True)
    (out / "l2/n2/split0/checkpoint.pt").write_bytes(b"a stale study's run in progress")
    lock = cell_lock(out / "l2/n2/split0")
    assert lock.acquire()  # as a still-running (stale) study process would hold it
    try:
        study(out, methods_file, progress=True)
    finally:
        lock.release()
    text = capsys.readouterr().out
    assert "1 cell(s) running in another study process, skipped: l2 n=2 split=0" in text
    assert sorted(c[0] for c in calls(out)) == ["l2/n2/split1", "none/n2/split0", "none/n2/split1"]
    assert (out / "l2/n2/split0/checkpoint.pt").read_bytes() == b"a stale study's run in progress"
    assert len(read_results_csv(out / "results.csv")) == 3
    study(out, methods_file)  # the lock released: the next run trains it
    assert calls(out)[-1][0] == "l2/n2/split0"


# ------------------------------------------------------------- item 10: a failure says where to look


def test_a_failing_cell_whose_error_file_cannot_be_written_says_so_and_gives_the_traceback(tmp_path, methods_file):
    out = tmp_path / "study"
    with pytest.raises(runner.StudyFailed) as info:
        study(out, methods_file, methods=["none"], split_seeds=[0], train_fn=train_failing_on_a_full_disk)
    (label, error), = info.value.failures
    assert "no space left on device (simulated in the cell)" in error
    assert "traceback in" not in error and "could not write" in error and "error.txt" in error
    assert "the traceback ends:" in error and "train_failing_on_a_full_disk" in error  # its last frames


def test_a_failing_cell_names_the_error_file_it_wrote(tmp_path, methods_file):
    out = tmp_path / "study"
    with pytest.raises(runner.StudyFailed) as info:
        study(out, methods_file, methods=["none"], split_seeds=[0], train_fn=failing_train)
    (label, error), = info.value.failures
    error_file = out / "none/n2/split0/error.txt"
    assert error.endswith(f"(traceback in {error_file})") and "in failing_train" in error_file.read_text()


# ------------------------------------------------------------------------------- newcomer items


def test_epochs_for_a_size_the_study_does_not_run_is_an_error(tmp_path, methods_file):
    with pytest.raises(UserError, match=r"--epochs-by-size gives epochs for 50 images per class, which --sizes \(2\)"):
        study(tmp_path / "s", methods_file, epochs_by_size={2: 5, 50: 80})
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("override, flag", [("data.images_per_class=5", "--sizes"), ("data.split_seed=3", "--split-seeds")])
def test_a_per_cell_key_given_to_study_is_an_error(tmp_path, capsys, override, flag):
    assert main(["study", "--data", "mini", "--sizes", "2", "--out", str(tmp_path / "s"), override]) == 2
    err = capsys.readouterr().err
    assert f"{override.split('=')[0]} cannot be given to study" in err and flag in err
    assert not (tmp_path / "s").exists()


def test_the_command_line_epochs_beat_a_methods_file_epochs_with_a_note(tmp_path, capsys):
    from filterprior.commands.study import add_study_arguments, study_main
    import argparse

    methods = tmp_path / "methods.yaml"
    methods.write_text("none: []\nlong: [prior.name=l2, epochs=400]\n")
    out = tmp_path / "s"
    args = add_study_arguments(argparse.ArgumentParser()).parse_args(
        ["--out", str(out), "--sizes", "2", "--split-seeds", "0", "--methods-file", str(methods), "--workers", "1",
         "--epochs", "3"])
    assert study_main(args, train_fn=fake_train) == 0
    assert sorted((c[0], c[1]) for c in calls(out)) == [("long/n2/split0", "3"), ("none/n2/split0", "3")]
    printed = capsys.readouterr().out
    assert "note: method long sets epochs in its methods file; the command line's epochs is used instead" in printed
    # The study ends with its summary table, as the demo does.
    assert "## 2 images per class" in printed and "| long | 1 |" in printed
    # Without --epochs the method's own epochs stand, and no note.
    args = add_study_arguments(argparse.ArgumentParser()).parse_args(
        ["--out", str(tmp_path / "t"), "--sizes", "2", "--split-seeds", "0", "--methods-file", str(methods),
         "--workers", "1", "--quiet"])
    assert study_main(args, train_fn=fake_train) == 0
    assert sorted(c[1] for c in calls(tmp_path / "t")) == ["200", "400"]
    printed = capsys.readouterr().out
    assert "note:" not in printed and "long n=2" not in printed  # --quiet: no line per cell ...
    assert "| long | 1 |" in printed  # ... but the summary table all the same
    args = add_study_arguments(argparse.ArgumentParser()).parse_args(
        ["--out", str(tmp_path / "u"), "--sizes", "2", "--split-seeds", "0", "--methods-file", str(methods),
         "--workers", "1", "--quiet", "--epochs", "5"])
    assert study_main(args, train_fn=fake_train) == 0
    assert "note: method long sets epochs" in capsys.readouterr().out  # a note is shown even with --quiet


def test_a_study_under_torchrun_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    # torchrun sets these in every rank; each rank's cells would join one group and mix their gradients
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "s"
    assert main(["study", "--data", "mini", "--sizes", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not run under torchrun (WORLD_SIZE=2)" in err and "--workers" in err
    assert not out.exists()


def test_a_method_tuned_per_size_runs_its_own_recipe_at_each_size(tmp_path, capsys):
    from filterprior.commands.study import add_study_arguments, study_main
    import argparse

    methods = tmp_path / "methods.yaml"
    methods.write_text("none: []\n"
                       "tuned:\n  overrides: [prior.name=l2, epochs=400]\n  by_size: {3: [epochs=160, prior.weight=0.5]}\n")
    args = add_study_arguments(argparse.ArgumentParser()).parse_args(
        ["--out", str(tmp_path / "s"), "--sizes", "2,3", "--split-seeds", "0", "--methods-file", str(methods),
         "--workers", "1", "--quiet"])
    assert study_main(args, train_fn=fake_train) == 0
    assert sorted((c[0], c[1]) for c in calls(tmp_path / "s")) == [
        ("none/n2/split0", "200"), ("none/n3/split0", "200"), ("tuned/n2/split0", "400"), ("tuned/n3/split0", "160")]
    cell = json.loads((tmp_path / "s" / "tuned" / "n3" / "split0" / "cell.json").read_text())
    assert cell["overrides"] == ["prior.name=l2", "epochs=400", "epochs=160", "prior.weight=0.5"]
    assert cell["config"]["prior"]["weight"] == 0.5 and cell["config"]["epochs"] == 160
    assert "note:" not in capsys.readouterr().out
    # --epochs-by-size is the command line: it wins over the method's epochs at its sizes, with a note.
    args = add_study_arguments(argparse.ArgumentParser()).parse_args(
        ["--out", str(tmp_path / "t"), "--sizes", "2,3", "--split-seeds", "0", "--methods-file", str(methods),
         "--workers", "1", "--quiet", "--epochs-by-size", "3=7"])
    assert study_main(args, train_fn=fake_train) == 0
    assert sorted((c[0], c[1]) for c in calls(tmp_path / "t"))[2:] == [("tuned/n2/split0", "400"), ("tuned/n3/split0", "7")]
    assert "note: method tuned sets epochs in its methods file; --epochs-by-size 3=7 is used" in capsys.readouterr().out


def test_an_interrupted_study_says_the_command_that_resumes_it(tmp_path, capsys, monkeypatch):
    import filterprior.train.engine as engine

    monkeypatch.setattr(engine, "train", interrupted_train)  # Ctrl-C in the middle of the first cell
    out = tmp_path / "s"
    argv = ["study", "--data", "mini", "--sizes", "2", "--split-seeds", "0", "--methods", "none", "--workers", "1",
            "--out", str(out), "threads=1"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted; to resume: filterprior " + " ".join(argv)


def test_train_quiet_still_prints_the_final_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "mini", "--images-per-class", "2", "--epochs", "1", "--out", str(out), "--quiet",
                 "threads=1", "filter_pictures=false"]) == 0
    acc = json.loads((out / "metrics.json").read_text())["test_acc"]
    assert capsys.readouterr().out.strip() == f"test accuracy {100 * acc:.2f}%; run dir {out}"


def test_an_interrupted_train_says_the_command_that_resumes_it(tmp_path, capsys, monkeypatch):
    import filterprior.train as train_package

    monkeypatch.setattr(train_package, "train", interrupted_train)
    assert main(["train", "--data", "mini", "--epochs", "1", "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err.strip() == f"interrupted; to resume: filterprior train --out {tmp_path / 'run'} --resume"


def test_shards_are_numbered_from_zero_in_help_and_errors(capsys):
    from filterprior.commands import build_parser

    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["study"].format_help().split())
    assert "shards are numbered from 0: --shard 0/4 .. 3/4" in help_text
    assert main(["study", "--shard", "4/4"]) == 2
    assert "expected 0 <= i < n (shards are numbered from 0)" in capsys.readouterr().err


# ------------------------------------------------------- issue 14 part 4: shards at once, devices


def test_worker_devices_spread_over_the_gpus_and_change_nothing_without_one():
    assert worker_devices(4, 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert worker_devices(3, 0) == [None, None, None]
    assert workers_for(2, 3, None) == 6 and workers_for(2, 3, 4) == 4  # K per GPU; --workers caps it
    assert workers_for(2, 0, None) is None and workers_for(2, 0, 5) == 5  # no GPU: as if not given
    assert workers_for(None, 4, 3) == 3


def test_a_pinned_worker_keeps_a_config_that_names_its_device(monkeypatch):
    from filterprior.study import workers

    monkeypatch.setattr(workers, "_device", "cuda:1")
    assert [pin_device(d) for d in ("auto", "cuda", "cpu", "cuda:0", "mps")] == ["cuda:1", "cuda:1", "cpu", "cuda:0", "mps"]
    monkeypatch.setattr(workers, "_device", None)
    assert pin_device("auto") == "auto"


def test_each_worker_keeps_one_device_for_all_its_cells(tmp_path, methods_file, monkeypatch):
    # Two GPUs as this study sees them (the stand-in engine never touches a device): one worker per GPU.
    monkeypatch.setattr(runner, "visible_gpus", lambda: 2)
    out = tmp_path / "study"
    study(out, methods_file, sizes=[2, 3], workers=None, workers_per_device=1,
          train_fn=fake_train_waiting_for_a_second_worker)
    used = {}
    for _cell, _epochs, device, pid in calls(out):
        used.setdefault(pid, set()).add(device)
    assert len(calls(out)) == 8 and len(used) == 2
    assert sorted(d for devices in used.values() for d in devices) == ["cuda:0", "cuda:1"]  # one each, kept


def test_tables_wait_for_another_process_writing_them(tmp_path, methods_file):
    import threading

    from filterprior.study.locks import FileLock, TABLES_LOCK_FILE

    out = tmp_path / "study"
    study(out, methods_file)
    (out / "results.csv").unlink()
    other = FileLock(out / TABLES_LOCK_FILE)  # another shard collecting and writing the tables
    assert other.acquire()
    writer = threading.Thread(target=study, args=(out, methods_file))  # all cells finished: only the tables
    writer.start()
    writer.join(timeout=3)
    assert writer.is_alive() and not (out / "results.csv").exists()  # it waits for the lock ...
    other.release()
    writer.join(timeout=30)
    assert not writer.is_alive() and len(read_results_csv(out / "results.csv")) == 4  # ... then writes


def failing_train(cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False):
    raise RuntimeError("the cell failed")


def test_cells_recorded_with_the_legacy_config_hash_are_kept_and_a_changed_key_still_refuses(tmp_path, methods_file):
    from filterprior.config import config_from_dict
    from filterprior.config.legacy import legacy_layout
    from filterprior.study.grid import cell_hash, recipe_hash

    out = tmp_path / "study"
    study(out, methods_file, split_seeds=[0])
    for cell_file in out.glob("*/n2/split0/cell.json"):  # as the version before (every key hashed) wrote them
        record = json.loads(cell_file.read_text())
        cfg = config_from_dict(record["config"])
        assert record["config_hash"] == cell_hash(cfg) != cell_hash(cfg, legacy=True)
        record["config_hash"], record["recipe_hash"] = cell_hash(cfg, legacy=True), recipe_hash(cfg, legacy=True)
        record["config"] = legacy_layout(cfg)  # and the config in the layout of that time
        cell_file.write_text(json.dumps(record))
    study(out, methods_file, split_seeds=[0, 1])  # same config: split 0 kept, split 1 added
    assert [c[0] for c in calls(out)[2:]] == ["none/n2/split1", "l2/n2/split1"]
    rows = read_results_csv(out / "results.csv")
    assert len(rows) == 4 and len({r.recipe_hash for r in rows if r.method == "none"}) == 1  # averaged together
    record = json.loads((out / "none/n2/split0/cell.json").read_text())
    assert record["legacy_config_hash"] != record["config_hash"]
    for cell_file in out.glob("*/n2/split1/cell.json"):  # the new cells' records, back in the old layout too
        record = json.loads(cell_file.read_text())
        record["config"] = legacy_layout(config_from_dict(record["config"]))
        cell_file.write_text(json.dumps(record))
    with pytest.raises(UserError) as info:
        study(out, methods_file, epochs=16)
    assert "and 1 more: epochs: 15 → 16. Nothing was deleted" in str(info.value)  # no renamed key shown as changed


def test_the_epochs_by_size_note_names_only_the_sizes_where_the_method_sets_epochs():
    from filterprior.study.methods import Method
    from filterprior.study.runner import _precedence_notes

    late = Method("late", ("prior.name=l2",), ((3, ("epochs=9",)),))  # epochs at 3 a class only
    notes = _precedence_notes([late], [], [2, 3], {2: 5, 3: 7})
    assert notes == ["note: method late sets epochs in its methods file; --epochs-by-size 3=7 is used instead "
                     "(the command line wins)"]
    assert _precedence_notes([late], [], [2], {2: 5}) == []  # at 2 a class it never set epochs: nothing to say


def test_the_command_line_note_names_only_the_studys_sizes_where_the_method_sets_the_key():
    from filterprior.study.methods import Method
    from filterprior.study.runner import _precedence_notes

    mixed = Method("mixed", ("epochs=9",), ((3, ("data.cutmix=1.0",)),))  # CutMix at 3 a class only
    assert _precedence_notes([mixed], ["data.cutmix"], [2]) == []  # not set at 2: nothing replaced
    assert _precedence_notes([mixed], ["data.cutmix"], [2, 3]) == [
        "note: method mixed sets data.cutmix at 3 images a class in its methods file; the command line's "
        "data.cutmix is used instead (the command line wins)"]
    assert _precedence_notes([mixed], ["data.cutmix", "epochs"], [3]) == [
        "note: method mixed sets epochs in its methods file; the command line's epochs is used instead "
        "(the command line wins)",
        "note: method mixed sets data.cutmix in its methods file; the command line's data.cutmix is used instead "
        "(the command line wins)"]
