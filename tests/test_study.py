"""The study package: grid, shards, resume, failures, tables and the CLI helper.

Grid logic is tested with a small stand-in for the engine that writes a real metrics.json; one
end-to-end test runs the real engine on the embedded mini dataset once it exists.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import pytest
import torch

from filterprior.config import TrainConfig, apply_overrides
from filterprior.errors import UserError
from filterprior.banks.bank import BANKS_DIR as BANKS
from filterprior.study import (
    StudyFailed,
    build_grid,
    cell_config,
    load_methods,
    read_results_csv,
    run_study,
    select_methods,
    shard_cells,
    summary_markdown,
)
from filterprior.commands.study import add_study_arguments, study_main
from filterprior.study.grid import Cell, cell_hash
from filterprior.study import execution, runner
from filterprior.study.execution import cell_progress, threads_per_worker
from filterprior.results import ResultRow, gain_with_se, mean_std, summarize, write_results_csv
from filterprior.utils import atomic_write_text

# ------------------------------------------------------------------------------ engine stand-ins
# Module-level so that worker processes started with 'spawn' can unpickle them.


def fake_train(cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False) -> dict:
    """Writes a metrics.json whose accuracy depends on the cell, and logs the call in the study dir."""
    run_dir = Path(run_dir)
    study_dir = run_dir.parents[2]
    with open(study_dir / "calls.log", "a") as log:
        log.write(f"{run_dir.relative_to(study_dir).as_posix()}\n")
    bonus = {"none": 0.0, "l2": 0.01, "gaussian": 0.03}.get(cfg.prior.name, 0.02)
    test_acc = 0.1 + cfg.data.images_per_class / 1000 + bonus + cfg.data.split_seed / 100
    metrics = {
        "test_acc": test_acc if cfg.test else None,  # test: false (study --hide-test) reads no test set
        "val_acc": 0.1 + cfg.data.images_per_class / 1000,
        "wall_time_s": 1.5,
        "seed": cfg.seed,
        "threads": cfg.threads,
        "resume": resume,
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics))
    return metrics


def slow_train(cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False) -> dict:
    """Logs one epoch to metrics.csv, as the engine does, then takes a while over the rest."""
    (Path(run_dir) / "metrics.csv").write_text("epoch,step\n1,4\n")
    time.sleep(2.0)
    return fake_train(cfg, run_dir, resume, quiet)


def train_failing_for_l2(cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False) -> dict:
    if cfg.prior.name == "l2":
        raise RuntimeError("l2 exploded")
    return fake_train(cfg, run_dir, resume, quiet)


def calls(study_dir: Path) -> list[str]:
    log = study_dir / "calls.log"
    return log.read_text().split() if log.exists() else []


METHODS_YAML = """\
none: []
l2: [prior.name=l2, prior.weight=0.001]
gaussian: [prior.name=gaussian, prior.weight=0.1]
"""


@pytest.fixture
def methods_file(tmp_path: Path) -> Path:
    path = tmp_path / "methods.yaml"
    path.write_text(METHODS_YAML)
    return path


def small_study(out: Path, methods_file: Path, **kwargs):
    options = dict(sizes=[2, 4], methods=None, split_seeds=[0, 1], workers=1, train_fn=fake_train,
                   progress=False, methods_file=methods_file)
    options.update(kwargs)
    return run_study(TrainConfig(), out, **options)


# ------------------------------------------------------------------------------------- methods


def test_bundled_methods_are_all_valid_recipes():
    methods = load_methods()
    assert list(methods) == ["none", "l2", "gaussian", "mmd", "adversarial", "init-from-bank", "init-frozen", "transfer", "finetune-airnet", "none-airnet", "none-strong-airnet", "l2sp-airnet", "finetune-strong-airnet", "l2sp-strong-airnet", "init-gaussian", "seed-faithful"]
    cfg = apply_overrides(TrainConfig(), list(methods["seed-faithful"].overrides))
    assert (cfg.prior.name, cfg.prior.adversarial.seed_faithful, cfg.prior.weight) == ("adversarial", True, 1.0)
    assert (cfg.prior.normalize, cfg.prior.adversarial.loss, cfg.prior.adversarial.d_arch) == ("none", "bce", "conv")
    assert apply_overrides(TrainConfig(), list(methods["init-from-bank"].overrides)).init.from_bank


def test_finetune_airnet_starts_from_the_bundled_source_network_and_trains_all_of_it():
    from filterprior.banks import load_bank
    from filterprior.config import load_config, packaged_config
    from filterprior.train.setup import build_model

    base = load_config(packaged_config("small-data.yaml"))
    cfg = apply_overrides(base, list(load_methods()["finetune-airnet"].overrides))
    model = build_model(cfg, 10, torch.device("cpu"))
    bank = load_bank(BANKS / "airnet-cifar100-networks.safetensors")
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert [name for name, _ in convs] == bank.layer_names
    for name, conv in convs:
        assert torch.equal(conv.weight, bank.filters(name).float()), name
    assert all(p.requires_grad for p in model.parameters())  # fine-tuned, not frozen
    scratch = build_model(apply_overrides(base, list(load_methods()["none-airnet"].overrides)), 10, torch.device("cpu"))
    assert not torch.equal(next(scratch.parameters()), convs[0][1].weight)


def test_the_airnet_methods_per_size_epochs_give_the_recorded_studies_cells():
    # The recorded studies ran the airnet methods with --epochs-by-size 50=80,100=80; the methods now say
    # so themselves (by_size), and must give the very same cell configs, so those cells stay finished.
    from filterprior.study.methods import Method

    base = TrainConfig(seed=3)
    methods = load_methods()
    for name in ("none-airnet", "finetune-airnet", "l2sp-airnet"):
        flat = Method(name, methods[name].overrides)  # the shared overrides alone, as before by_size
        for size in (10, 50, 100):
            old = cell_config(base, Cell(flat, size, 1), {50: 80, 100: 80} if size > 10 else None)
            assert cell_config(base, Cell(methods[name], size, 1)) == old
            assert old.epochs == (80 if size > 10 else base.epochs)


def test_the_strong_recipes_train_what_the_pool_measured_and_the_bank_gains_over_the_strong_row():
    # The candidates of benchmarks/results/tuning.csv (tag bank10-strong) that chose these methods, as written there.
    from filterprior.results import baseline_of
    from filterprior.study.methods import Method

    pool = {
        "finetune-strong-airnet": "model.name=airnet init.from_bank=true init.mode=network tta=flip data.policy=autoaugment",
        "l2sp-strong-airnet": "model.name=airnet init.from_bank=true init.mode=network tta=flip prior.name=l2-sp "
                              "prior.layers=[all] prior.weight=1.0 data.policy=autoaugment",
    }
    # and since then L2-SP tests with flip-shift, chosen on the finished runs' pools (benchmarks/tta_on_pool.py)
    pool["l2sp-strong-airnet"] = pool["l2sp-strong-airnet"].replace("tta=flip ", "tta=flip-shift ")
    base, methods = TrainConfig(seed=3), load_methods()
    # what the pool chose beyond the candidate, per size (benchmarks/RESULTS.md, rules fixed before the runs):
    # L2-SP 800 epochs and λ 0.1 at 10 a class (tag bank10-lambda) and λ 1e-2 at 50 and 100 (tags bank50-prior-all,
    # bank100-prior-all),
    # L2-SP's Adam lr 4e-3 at 50 a class and 2e-3 at 100 (tag bank-lr), fine-tuning 160 epochs at 50; elsewhere
    # the candidates' own epochs (the base's at 10, 80 above it)
    # and at every size the AutoAugment-trained source's bank (tags bank10-aa-source, session 30, and
    # bank50-aa-source and bank100-aa-source, session 31)
    chosen_at = {("l2sp-strong-airnet", 10): ["epochs=800", "prior.weight=0.1",
                                              "prior.bank=airnet-cifar100-autoaugment-networks"],
                 ("l2sp-strong-airnet", 50): ["prior.weight=0.01", "epochs=80", "optim.lr=4e-3",
                                              "prior.bank=airnet-cifar100-autoaugment-networks"],
                 ("l2sp-strong-airnet", 100): ["prior.weight=0.01", "epochs=80", "optim.lr=2e-3",
                                               "prior.bank=airnet-cifar100-autoaugment-networks"],
                 ("finetune-strong-airnet", 50): ["epochs=160"]}
    for name, candidate in pool.items():
        for size in (10, 50, 100):
            extra = chosen_at.get((name, size), [f"epochs={base.epochs if size == 10 else 80}"])
            chosen = cell_config(base, Cell(Method(name, (*candidate.split(), *extra)), size, 2))
            tuned = cell_config(base, Cell(methods[name], size, 2))
            assert tuned == chosen and f"epochs={tuned.epochs}" in extra, (name, size)
        assert baseline_of(name, [*methods, name]) == "none-strong-airnet"
    # and the tuned row itself, at each size the pool's candidate (tags scratch10-strong, scratch50-strong,
    # scratch100-strong: airnet-autoaug-e800 and -e320 in tuning.csv; at 100 a class 160 epochs and at 10 a
    # class 1600, the pool figures read off the test study's val_acc, benchmarks/RESULTS.md; at 10 a class
    # and 50 CutMix too, tags scratch10-cutmix1600 and scratch50-cutmix320; at 100 a class 320 epochs with
    # CutMix, tag scratch100-e320-cutmix; at 50 a class 640 epochs with CutMix, tag scratch50-e640-cutmix; at
    # every size flip-shift TTA, then its 18-view form flip-shift-diagonal, chosen on those runs' pools by
    # benchmarks/tta_on_pool.py; the study sets the size itself)
    # and batch 16 at 10 a class (read off the test study bs16-10's val_acc; RESULTS "Batch 16 at 10 a class")
    for size, epochs in ((10, 1600), (50, 640), (100, 320)):  # CutMix at every size
        recipe = f"model.name=airnet tta=flip-shift-diagonal data.policy=autoaugment epochs={epochs} data.cutmix=1.0 data.mix_prob=0.5"
        recipe += " batch_size=16" if size == 10 else ""
        candidate = Method("x", tuple(recipe.split()))
        tuned = cell_config(base, Cell(methods["none-strong-airnet"], size, 2))
        assert tuned == cell_config(base, Cell(candidate, size, 2)) and tuned.epochs == epochs, size


def test_the_readme_shows_the_bundled_tuned_recipe(tmp_path):
    # The README's per-size recipe example says it is the bundled none-strong-airnet, copied by hand: it must
    # not drift from methods.yaml when a size's recipe changes.
    lines = (Path(__file__).resolve().parents[1] / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    none-strong-airnet:"))
    block = lines[start:lines.index("", start)]
    (tmp_path / "readme.yaml").write_text("\n".join(line[4:] for line in block) + "\n")
    assert load_methods(tmp_path / "readme.yaml")["none-strong-airnet"] == load_methods()["none-strong-airnet"]


def test_unknown_method_lists_the_known_ones(methods_file):
    with pytest.raises(UserError, match="unknown method 'bogus'.*none, l2, gaussian"):
        select_methods(load_methods(methods_file), ["none", "bogus"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("x: [prior.nam=l2]", "method 'x'.*unknown config key 'prior.nam'"),
        ("x: [seed=3]", "method 'x' sets 'seed'"),
        ("x: prior.name=l2", "must be a list"),
        ("'bad/name': []", "method name 'bad/name'"),
        # a recipe tuned per size: overrides + by_size
        ("x:\n  overrides: [prior.name=l2]\n  by_sizes: {}", "method 'x' has unknown key.*by_sizes"),
        ("x:\n  by_size: {ten: [epochs=3]}", "by_size key 'ten' is not valid"),
        ("x:\n  by_size: {10: epochs=3}", "method 'x' at 10 images per class must be a list"),
        ("x:\n  by_size: {10: [seed=3]}", "method 'x' at 10 images per class sets 'seed'"),
        ("x:\n  by_size: {10: [prior.nam=l2]}", "method 'x' at 10 images per class: .*unknown config key 'prior.nam'"),
    ],
)
def test_bad_methods_file_names_file_and_problem(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        load_methods(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------- grid


def test_grid_order_and_cell_configs(methods_file):
    methods = select_methods(load_methods(methods_file), ["none", "gaussian"])
    grid = build_grid([10, 50], methods, [0, 1])
    assert [(c.images_per_class, c.split_seed, c.method.name) for c in grid] == [
        (10, 0, "none"), (10, 0, "gaussian"), (10, 1, "none"), (10, 1, "gaussian"),
        (50, 0, "none"), (50, 0, "gaussian"), (50, 1, "none"), (50, 1, "gaussian"),
    ]
    assert grid[5].rel_dir == Path("gaussian/n50/split0")
    base = TrainConfig(seed=7)
    none_cfg, gauss_cfg = cell_config(base, grid[2]), cell_config(base, grid[3])
    assert (gauss_cfg.prior.name, gauss_cfg.prior.weight) == ("gaussian", 0.1)
    assert (gauss_cfg.data.images_per_class, gauss_cfg.data.split_seed) == (10, 1)
    assert none_cfg.seed == gauss_cfg.seed == 8  # same training seed for every method on a split
    assert cell_config(base, grid[0]).seed == 7
    # only execution knobs are left out of the hash
    assert cell_hash(gauss_cfg) == cell_hash(apply_overrides(gauss_cfg, ["threads=3", "progress=false"]))
    assert cell_hash(gauss_cfg) != cell_hash(apply_overrides(gauss_cfg, ["epochs=2"]))


def test_grid_rejects_duplicates_and_bad_sizes(methods_file):
    methods = list(load_methods(methods_file).values())
    with pytest.raises(UserError, match=r"^images per class \[10, 10\] lists 10 more than once"):
        build_grid([10, 10], methods, [0])
    with pytest.raises(UserError, match=r"^split seed \[0, 1, 0\] lists 0 more than once"):
        build_grid([10], methods, [0, 1, 0])
    with pytest.raises(UserError, match="images per class 0"):
        build_grid([0], methods, [0])


def test_shards_partition_the_grid(methods_file):
    grid = build_grid([2, 4, 8], list(load_methods(methods_file).values()), [0, 1, 2, 3, 4])
    for count in (1, 2, 3, 4, 7):
        shards = [shard_cells(grid, (i, count)) for i in range(count)]
        assert sorted(k for s in shards for k in (grid.index(c) for c in s)) == list(range(len(grid)))
        for i, shard in enumerate(shards):
            assert all(grid.index(c) % count == i for c in shard)
    assert shard_cells(grid, None) == grid
    with pytest.raises(UserError, match="shard 2/2"):
        shard_cells(grid, (2, 2))


# -------------------------------------------------------------------------------------- runner


def test_study_writes_runs_results_and_summary(tmp_path, methods_file):
    out = tmp_path / "study"
    results = small_study(out, methods_file)
    assert results == out / "results.csv"
    assert len(calls(out)) == 2 * 3 * 2
    rows = read_results_csv(results)
    assert [(r.images_per_class, r.method, r.split_seed) for r in rows][:3] == [
        (2, "gaussian", 0), (2, "gaussian", 1), (2, "l2", 0)
    ]
    row = next(r for r in rows if (r.method, r.images_per_class, r.split_seed) == ("l2", 4, 1))
    assert row.test_acc == pytest.approx(0.1 + 0.004 + 0.01 + 0.01)
    assert row.run_dir == "l2/n4/split1"
    cell = json.loads((out / "l2/n4/split1/cell.json").read_text())
    assert cell["config_hash"] == row.config_hash
    assert json.loads((out / "l2/n4/split1/metrics.json").read_text())["resume"] is False
    summary = (out / "summary.md").read_text()
    assert "## 2 images per class" in summary and "## 4 images per class" in summary
    assert "| none | 2 |" in summary
    from PIL import Image

    with Image.open(out / "accuracy.png") as picture:
        assert picture.format == "PNG" and min(picture.size) >= 100


def test_resume_skips_finished_and_redoes_half_finished_cell(tmp_path, methods_file):
    out = tmp_path / "study"
    small_study(out, methods_file)
    half = out / "gaussian/n4/split0"
    (half / "metrics.json").unlink()  # as if killed mid-training
    (half / "checkpoint.pt").write_bytes(b"stale")
    (out / "calls.log").unlink()
    small_study(out, methods_file)
    assert calls(out) == ["gaussian/n4/split0"]
    assert not (half / "checkpoint.pt").exists()  # redone from a clean directory
    assert (half / "metrics.json").is_file()
    assert len(read_results_csv(out / "results.csv")) == 12


def test_changed_config_with_overwrite_redoes_only_the_changed_cells(tmp_path, methods_file):
    # Without overwrite the study refuses (tests/test_study_safety.py); with it, only the changed cells rerun.
    out = tmp_path / "study"
    small_study(out, methods_file)
    (out / "calls.log").unlink()
    methods_file.write_text(METHODS_YAML.replace("prior.weight=0.1", "prior.weight=0.5"))
    small_study(out, methods_file, overwrite=True)
    assert sorted(calls(out)) == sorted(f"gaussian/n{n}/split{s}" for n in (2, 4) for s in (0, 1))
    (out / "calls.log").unlink()
    run_study(TrainConfig(epochs=3), out, sizes=[2], methods=["none"], split_seeds=[0], workers=1,
              train_fn=fake_train, progress=False, methods_file=methods_file, overwrite=True)
    assert calls(out) == ["none/n2/split0"]


def test_failing_cell_does_not_stop_the_others(tmp_path, methods_file):
    out = tmp_path / "study"
    with pytest.raises(StudyFailed) as info:
        small_study(out, methods_file, train_fn=train_failing_for_l2)
    failed = sorted(label for label, _ in info.value.failures)
    assert failed == sorted(f"l2 n={n} split={s}" for n in (2, 4) for s in (0, 1))
    assert all("l2 exploded" in error for _, error in info.value.failures)
    assert "l2 exploded" in (out / "l2/n2/split0/error.txt").read_text()
    rows = read_results_csv(out / "results.csv")
    assert len(rows) == 8 and {r.method for r in rows} == {"none", "gaussian"}
    (out / "calls.log").unlink()
    small_study(out, methods_file)  # the rerun only redoes the failed cells
    assert sorted(calls(out)) == sorted(f"l2/n{n}/split{s}" for n in (2, 4) for s in (0, 1))
    assert not (out / "l2/n2/split0/error.txt").exists()
    assert len(read_results_csv(out / "results.csv")) == 12


def test_shards_share_one_directory_and_results_merge(tmp_path, methods_file):
    out = tmp_path / "study"
    small_study(out, methods_file, shard=(0, 2))
    first = read_results_csv(out / "results.csv")
    assert len(first) == 6
    small_study(out, methods_file, shard=(1, 2))
    merged = read_results_csv(out / "results.csv")
    assert len(merged) == 12 and set(first) < set(merged)
    assert len(calls(out)) == 12  # no cell trained twice


@pytest.mark.slow
def test_worker_processes_run_cells_with_split_threads(tmp_path, methods_file):
    out = tmp_path / "study"
    run_study(TrainConfig(), out, sizes=[2], methods=["none", "l2"], split_seeds=[0], workers=2,
              train_fn=fake_train, progress=False, methods_file=methods_file)
    assert sorted(calls(out)) == ["l2/n2/split0", "none/n2/split0"]
    metrics = json.loads((out / "none/n2/split0/metrics.json").read_text())
    assert metrics["threads"] == threads_per_worker(2)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])  # 1: cells train in this process, a thread gives the heartbeat
def test_worker_heartbeat_says_which_cells_train_and_their_epoch(tmp_path, methods_file, monkeypatch, capsys, workers):
    monkeypatch.setattr(execution, "HEARTBEAT_S", 0.3)
    study = tmp_path / "study"
    for method in ("none", "l2", "gaussian"):  # an earlier, stale run in each cell: 5 epochs logged
        stale = study / method / "n2" / "split0"
        stale.mkdir(parents=True)
        (stale / "metrics.csv").write_text("epoch\n1\n2\n3\n4\n5\n")
        (stale / "cell.json").write_text("{}")
        os.utime(stale / "cell.json", (time.time() - 3600, time.time() - 3600))
    run_study(TrainConfig(), study, sizes=[2], methods=["none", "l2", "gaussian"], split_seeds=[0], workers=workers,
              train_fn=slow_train, methods_file=methods_file, epochs_by_size={2: 7})
    out = capsys.readouterr().out
    assert "none n=2 split=0 epoch 1/7" in out and "l2 n=2 split=0 epoch 1/7" in out
    assert "gaussian n=2 split=0 epoch 1/7" in out
    assert "epoch 5/7" not in out  # a queued cell's stale files are not taken for progress


@pytest.mark.parametrize("text, epochs, expected", [
    ("epoch,step,time_s,lr\n1,4,30.0,0.1\n2,8,60.0,0.1\n", 10, "epoch 2/10, ~4 min left"),  # 30 s an epoch, 8 to go
    ("epoch,step,time_s\n1,4,720\n", 11, "epoch 1/11, ~2 h 00 min left"),
    ("epoch,step,time_s\n1,4,1.0\n", 2, "epoch 1/2, <1 min left"),
    ("epoch,step,time_s\n1,4,1.0\n2,8,2.0\n", 2, "epoch 2/2"),  # trained; testing now
    ("epoch,step,time_s\n1,4,30.0\n2,8", 10, "epoch 2/10"),  # a damaged last row: no guess
    ("epoch,step\n1,4\n", 10, "epoch 1/10"),  # no time column
    ("epoch,step,time_s\n", 10, "epoch 0/10"),
])
def test_heartbeat_gives_a_cells_time_left_from_its_pace(tmp_path, text, epochs, expected):
    (tmp_path / "metrics.csv").write_text(text)
    assert cell_progress(tmp_path / "metrics.csv", epochs) == expected
    assert cell_progress(tmp_path / "missing.csv", epochs) == f"epoch 0/{epochs}"


def fail_l2_else_slow(cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False) -> dict:
    if cfg.prior.name == "l2":
        raise RuntimeError("l2 exploded")
    return slow_train(cfg, run_dir, resume, quiet)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_heartbeat_counts_only_trained_cells_as_done(tmp_path, methods_file, monkeypatch, capsys, workers):
    # A failed cell (or one skipped because another process runs it) was once counted "done".
    monkeypatch.setattr(execution, "HEARTBEAT_S", 0.3)
    with pytest.raises(StudyFailed):
        run_study(TrainConfig(), tmp_path / "study", sizes=[2], methods=["l2", "none", "gaussian"], split_seeds=[0],
                  workers=workers, train_fn=fail_l2_else_slow, methods_file=methods_file)
    beats = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ... ")]
    assert any(", 1 failed," in line for line in beats)
    assert not any(line.startswith(("  ... 2/3 done", "  ... 3/3 done")) for line in beats)  # 2 cells train at most
    if workers == 1:  # cells run in order: l2 fails, then none trains, then gaussian
        assert all(line.startswith("  ... 1/3 done, 1 failed,") for line in beats if "training: gaussian" in line)


# -------------------------------------------------------------------------------------- tables


def result(method: str, size: int, seed: int, test: float, val: float | None = 0.5) -> ResultRow:
    return ResultRow(method, size, seed, test, val, 10.0 + seed, "h", f"{method}/n{size}/split{seed}")


def test_summary_math_matches_hand_computed_values(tmp_path):
    rows = [result("none", 10, s, acc) for s, acc in enumerate([0.40, 0.42, 0.44])]
    rows += [result("gaussian", 10, s, acc) for s, acc in enumerate([0.45, 0.49])]
    rows += [result("l2", 10, 0, 0.41)]
    rows += [result("l2", 20, s, acc, val=None) for s, acc in enumerate([0.60, 0.64])]  # no baseline at 20
    mean, std = mean_std([0.40, 0.42, 0.44])
    assert (mean, std) == (pytest.approx(0.42), pytest.approx(0.02))
    gain, se = gain_with_se([0.45, 0.49], [0.40, 0.42, 0.44])
    assert gain == pytest.approx(0.05)
    assert se == pytest.approx(math.sqrt(0.02**2 * 2 / 2 + 0.02**2 / 3))  # sa = sqrt(0.0008), sb = 0.02

    # Through a real results.csv, with an unfinished run (empty test_acc) that must be skipped.
    path = write_results_csv(rows, tmp_path / "results.csv")
    with path.open("a") as handle:
        handle.write("gaussian,10,2,,,,h,gaussian/n10/split2\n")
    read = read_results_csv(path)
    assert read == rows
    summary = summarize(read)
    assert [(s.images_per_class, s.method) for s in summary] == [
        (10, "none"), (10, "gaussian"), (10, "l2"), (20, "l2")]
    by_key = {(s.images_per_class, s.method): s for s in summary}
    gaussian, l2, l2_20 = by_key[10, "gaussian"], by_key[10, "l2"], by_key[20, "l2"]
    assert gaussian.n == 2 and gaussian.acc_mean == pytest.approx(0.47)
    assert gaussian.acc_std == pytest.approx(math.sqrt(0.0008))
    # Paired over the shared splits 0 and 1: differences 0.05 and 0.07 (tests/test_study_stats.py has more).
    assert gaussian.gain.paired and gaussian.gain.mean == pytest.approx(0.06)
    assert gaussian.gain_se == pytest.approx(0.01) and (gaussian.gain.up, gaussian.gain.pairs) == (2, 2)
    assert gaussian.wall_mean == pytest.approx(10.5) and gaussian.val_mean == pytest.approx(0.5)
    assert by_key[10, "none"].gain is None and by_key[10, "none"].gain_se is None
    assert l2.acc_std is None and l2.gain.mean == pytest.approx(0.01)  # split 0: 0.41 against 0.40
    assert l2.gain_se is None  # one pair has no spread
    assert l2_20.gain is None and l2_20.val_mean is None  # no baseline at that size, no validation pool

    # 'none' comes first whatever the order asked for; then that order; then the rest by name.
    assert [s.method for s in summarize(read, ["l2", "gaussian"])][:3] == ["none", "l2", "gaussian"]

    text = summary_markdown(read, ["none", "gaussian", "l2"])
    assert "| none | 3 | 42.00 ± 2.00 | 50.00 | — | — | — | 11.0 |" in text
    assert "| gaussian | 2 | 47.00 ± 2.83 | 50.00 | +6.00 ± 1.00 | [-6.71, +18.71] | 2/2 | 10.5 |" in text
    assert "| l2 | 1 | 41.00 ± n/a | 50.00 | +1.00 ± n/a | — | 1/1 | 10.0 |" in text
    assert "| l2 | 2 | 62.00 ± 2.83 | — | — | — | — | 10.5 |" in text
    assert text.index("| none |") < text.index("| gaussian |") < text.index("| l2 | 1")


HEADER = "method,images_per_class,split_seed,test_acc,val_acc,wall_time_s,config_hash,run_dir"


@pytest.mark.parametrize(
    "body, message",
    [
        ("none,5,0,high,0.5,1.0,h,d", r"bad\.csv, line 3: column 'test_acc' is 'high'; expected a fraction"),
        ("none,5,0,42.0,0.5,1.0,h,d", r"line 3: column 'test_acc' is '42.0'; expected a fraction in \[0, 1\]"),
        ("none,all,0,0.4,0.5,1.0,h,d", r"line 3: column 'images_per_class' is 'all'; expected a positive integer"),
        ("none,5,x,0.4,0.5,1.0,h,d", r"line 3: column 'split_seed' is 'x'"),
        ("none,5,0,0.4,0.5,,h,d", r"line 3: column 'wall_time_s' is ''"),
        ("none,5,0,0.4,nan,1.0,h,d", r"line 3: column 'val_acc' is 'nan'"),
    ],
)
def test_malformed_results_csv_names_line_and_column(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"{HEADER}\nnone,5,1,0.4,0.5,1.0,h,ok\n{body}\n")
    with pytest.raises(UserError, match=message):
        read_results_csv(path)


def test_results_csv_missing_columns_or_file(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("method,images_per_class,test_acc\nnone,5,0.3\n")
    with pytest.raises(UserError, match=r"old\.csv lacks columns \['split_seed', 'val_acc'"):
        read_results_csv(path)
    with pytest.raises(UserError, match="does not exist"):
        read_results_csv(tmp_path / "nope.csv")


def test_results_csv_has_the_documented_columns(tmp_path, methods_file):
    out = tmp_path / "study"
    small_study(out, methods_file, sizes=[2], split_seeds=[0])
    with open(out / "results.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["method", "images_per_class", "split_seed", "test_acc", "val_acc", "wall_time_s",
                      "config_hash", "run_dir", "recipe_hash"]


# ----------------------------------------------------------------------------------------- CLI


def parse(argv: list[str]) -> argparse.Namespace:
    return add_study_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_study_main_runs_and_applies_flags(tmp_path, methods_file):
    out = tmp_path / "study"
    args = parse(["--out", str(out), "--sizes", "3", "--methods", "none,l2", "--methods-file", str(methods_file),
                  "--split-seeds", "0-1,4", "--workers", "1", "--data", "mini", "--epochs", "2",
                  "optim.lr=0.01"])
    assert study_main(args, train_fn=fake_train) == 0
    assert sorted(calls(out)) == sorted(f"{m}/n3/split{s}" for m in ("none", "l2") for s in (0, 1, 4))
    config = json.loads((out / "l2/n3/split4/cell.json").read_text())["config"]
    assert (config["data"]["dataset"], config["epochs"], config["optim"]["lr"]) == ("mini", 2, 0.01)
    failing = parse(["--out", str(tmp_path / "f"), "--sizes", "3", "--methods-file", str(methods_file),
                     "--split-seeds", "0", "--workers", "1"])
    assert study_main(failing, train_fn=train_failing_for_l2) == 1


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--sizes", "10,x", "--sizes 'x'"),
        ("--split-seeds", "4-2", "range '4-2'"),
        ("--shard", "2/2", "--shard '2/2'"),
        ("--shard", "1", "i/n"),
        ("--workers", "0", "--workers '0'"),
        ("--epochs", "many", "--epochs 'many'"),
    ],
)
def test_study_main_rejects_bad_values(tmp_path, methods_file, flag, value, message):
    args = parse(["--out", str(tmp_path / "s"), "--methods-file", str(methods_file), flag, value])
    with pytest.raises(UserError, match=message):
        study_main(args, train_fn=fake_train)
    assert calls(tmp_path / "s") == []


def test_epochs_by_size_sets_each_cells_epochs():
    from filterprior.config import TrainConfig
    from filterprior.commands.study import parse_epochs_by_size
    from filterprior.study.grid import Cell, cell_config
    from filterprior.study.methods import load_methods

    none = load_methods()["none"]
    mapping = parse_epochs_by_size("50=80,100=40")
    assert mapping == {50: 80, 100: 40}
    base = TrainConfig(epochs=200)
    assert cell_config(base, Cell(none, 10, 0), mapping).epochs == 200
    assert cell_config(base, Cell(none, 50, 0), mapping).epochs == 80
    assert cell_config(base, Cell(none, 100, 1), mapping).epochs == 40
    with pytest.raises(UserError, match="N=E"):
        parse_epochs_by_size("50:80")


def test_a_rebuilt_bank_redoes_the_cells_that_read_it(tmp_path):
    from filterprior.banks.bank import FilterBank, save_bank

    bank_path = tmp_path / "bank.safetensors"

    def write_bank(seed: int) -> None:
        filters = torch.randn(10, 3, 7, 7, generator=torch.Generator().manual_seed(seed))
        save_bank(FilterBank({"0": filters}, {"model": "filternet-s2", "networks": 1}), bank_path)

    methods = tmp_path / "methods.yaml"
    methods.write_text(f"none: []\ngaussian: [prior.name=gaussian, prior.weight=0.1, prior.bank={bank_path}]\n")
    out = tmp_path / "study"
    write_bank(0)
    small_study(out, methods)
    (out / "calls.log").unlink()
    small_study(out, methods)
    assert calls(out) == []  # nothing changed: nothing redone
    write_bank(1)  # same path, same config, other kernels
    with pytest.raises(UserError, match="the filter bank file it reads has other content"):
        small_study(out, methods)
    small_study(out, methods, overwrite=True)
    assert sorted(calls(out)) == sorted(f"gaussian/n{n}/split{s}" for n in (2, 4) for s in (0, 1))


def test_a_method_named_after_a_model_gains_over_that_models_own_baseline():
    from filterprior.results import baseline_of

    def rows(method, accs):
        return [ResultRow(method, 50, i, a, None, 1.0, "h", f"{method}/n50/split{i}") for i, a in enumerate(accs)]

    read = rows("none", [0.40, 0.42]) + rows("none-airnet", [0.50, 0.52]) + rows("finetune-airnet", [0.65, 0.67]) \
        + rows("transfer-wide", [0.60, 0.62])
    by_method = {s.method: s for s in summarize(read)}
    assert by_method["finetune-airnet"].gain.mean == pytest.approx(0.15)  # over none-airnet, not none
    assert by_method["none-airnet"].gain.mean == pytest.approx(0.10)  # a baseline itself gains over none
    assert by_method["transfer-wide"].gain.mean == pytest.approx(0.20)  # no none-wide in the study: none
    assert baseline_of("init-from-bank", ["none", "none-bank"]) == "none-bank"
    assert baseline_of("gaussian", ["none", "none-airnet"]) == "none"
    # the most specific baseline the study has: a tuned from-scratch recipe before the plain one
    tuned = ["none", "none-airnet", "none-strong-airnet"]
    assert baseline_of("l2sp-strong-airnet", tuned) == "none-strong-airnet"
    assert baseline_of("l2sp-strong-airnet", ["none", "none-airnet"]) == "none-airnet"
    assert baseline_of("none-strong-airnet", tuned) == "none-airnet"
    assert baseline_of("strong-airnet", tuned) == "none-airnet"
    assert baseline_of("none-airnet", tuned) == baseline_of("none", tuned) == "none"


def test_hide_test_shows_the_pool_only_until_the_same_study_runs_without_it(tmp_path, methods_file, capsys):
    out = tmp_path / "study"
    argv = ["--out", str(out), "--sizes", "3", "--methods-file", str(methods_file), "--split-seeds", "1-2",
            "--workers", "1"]
    # A study already tested (run without the flag): --hide-test retrains nothing and shows its pool only.
    assert study_main(parse(argv), train_fn=fake_train) == 0
    capsys.readouterr()
    assert study_main(parse(argv + ["--hide-test"]), train_fn=fake_train) == 0
    assert len(calls(out)) == 6
    shown = capsys.readouterr().out + (out / "summary.md").read_text()
    rows = read_results_csv(out / "results.csv")
    assert len(rows) == 6 and all(r.test_acc is not None and r.test_acc != r.val_acc for r in rows)
    for row in rows:  # fake_train's test accuracies (all distinct from the pool's) appear nowhere
        assert f"{100 * row.test_acc:.2f}" not in shown
    assert f"{100 * rows[0].val_acc:.2f}" in shown and "validation pool only" in shown
    # Without the flag again, the tables show test accuracy.
    assert study_main(parse(argv), train_fn=fake_train) == 0
    assert len(calls(out)) == 6
    summary = (out / "summary.md").read_text()
    assert "validation pool only" not in summary and "| test acc (%) |" in summary
    gaussian = [r.test_acc for r in rows if r.method == "gaussian"]
    assert f"{100 * sum(gaussian) / 2:.2f}" in summary
    with pytest.raises(UserError, match="data.val_per_class=0 leaves no pool"):
        study_main(parse(argv + ["--hide-test", "data.val_per_class=0"]), train_fn=fake_train)
    with pytest.raises(UserError, match="the mini set has no pool by default"):
        study_main(parse(argv + ["--hide-test", "--data", "mini"]), train_fn=fake_train)


def test_a_hide_test_study_trains_without_the_test_read_and_shows_the_pool(tmp_path, methods_file, capsys):
    out = tmp_path / "study"
    argv = ["--out", str(out), "--sizes", "3", "--methods-file", str(methods_file), "--split-seeds", "1-2",
            "--workers", "1", "--hide-test"]
    assert study_main(parse(argv), train_fn=fake_train) == 0
    shown = capsys.readouterr().out + (out / "summary.md").read_text()
    rows = read_results_csv(out / "results.csv")  # rows with a pool figure and an empty test_acc are kept
    assert len(rows) == 6 and all(r.test_acc is None and r.val_acc is not None for r in rows)
    assert f"{100 * rows[0].val_acc:.2f}" in shown and "validation pool only" in shown
    assert "test" not in next(line for line in shown.splitlines() if line.startswith("gaussian "))  # cell line
    with open(out / "results.csv", newline="") as handle:  # the test column is empty, not 0
        assert [record["test_acc"] for record in csv.DictReader(handle)] == [""] * 6
    # The HTML report of a study nobody has tested yet shows its pool, and says why.
    from filterprior.report.html import build_report

    page = Path(build_report(out, tmp_path / "report.html")).read_text()
    assert "Test accuracy hidden (study --hide-test)" in page and "best mean validation-pool accuracy" in page
    assert f"{100 * rows[0].val_acc:.2f}" in page and "test acc (%)" not in page.split("All runs")[0]
