"""Run a study's cells: in parallel worker processes, resumable, and sliceable into shards.

A cell is finished when its run directory holds metrics.json (the engine writes it last) and a
cell.json whose config hash matches the cell's current config. An interrupted cell (no metrics.json)
goes on from its last checkpoint when that is of its current config (cell_job.resumable), else it is
redone from an empty directory. A finished cell whose config changed is never deleted unasked: the
study refuses before it writes anything (changes.CellsChanged) unless run with overwrite=True.

Each cell is trained under a lock (locks.py), so two study processes never train one cell at once; a
cell locked by another process is skipped as "running elsewhere". How the cells run (in this process or
in worker processes, with a heartbeat line) is execution.py; workers die with the study process
(workers.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

from filterprior.config import TrainConfig, config_to_dict
from filterprior.errors import UserError
from filterprior.study.grid import (
    DEFAULT_SIZES,
    DEFAULT_SPLIT_SEEDS,
    Cell,
    build_grid,
    cell_config,
    cell_hash,
    method_keys,
    method_keys_overridden,
    recipe_hash,
    shard_cells,
)
from filterprior.study.cell_job import CHANGED, FINISHED, UNFINISHED, UNTESTED, Job, TrainFn, cell_state, resumable
from filterprior.study.changes import CellsChanged, changed_cell
from filterprior.study.locks import locked_elsewhere, tables_lock
from filterprior.study.execution import default_workers, run_in_pool, run_serially, threads_per_worker
from filterprior.study.workers import visible_gpus, worker_devices, workers_for
from filterprior.study.methods import load_methods, select_methods
from filterprior.study.preflight import check_configs
from filterprior.study.records import update_records
from filterprior.results import (
    ResultRow,
    collect_results,
    read_finished_cell,
    write_results_csv,
    write_summary,
)

RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.md"
PLOT_FILE = "accuracy.png"


class StudyFailed(Exception):
    """Some cells failed; the others finished and their results are written."""

    def __init__(self, failures: list[tuple[str, str]], results_csv: Path):
        self.failures = failures  # (cell label, error message)
        self.results_csv = results_csv
        listing = "\n".join(f"  {label}: {error}" for label, error in failures)
        super().__init__(f"{len(failures)} cell(s) failed:\n{listing}")


def _cell_line(row: ResultRow, hide_test: bool = False) -> str:
    val = "—" if row.val_acc is None else f"{100 * row.val_acc:.2f}%"
    tested = "—" if row.test_acc is None else f"{100 * row.test_acc:.2f}%"  # none: trained with test: false
    test = "" if hide_test else f"test {tested:>7}  "
    return (
        f"{row.method:<16} n={row.images_per_class:<4} split={row.split_seed:<3} "
        f"{test}val {val:>7}  {row.wall_time_s:8.1f} s"
    )


def _write_tables(out_dir: Path, expected: dict[str, tuple[str, ...]], method_order: list[str],
                  metric: str = "test") -> Path:
    with tables_lock(out_dir):  # shards sharing out_dir: the last writer sees every finished cell
        rows = collect_results(out_dir, expected)
        results = write_results_csv(rows, out_dir / RESULTS_FILE)
        write_summary(rows, out_dir / SUMMARY_FILE, method_order, metric=metric)
    return results


def _write_plot(results_csv: Path, out_dir: Path, log: Callable[[str], None], metric: str = "test") -> None:
    # Imported here, not at the top: worker processes import this module, and matplotlib would slow each start.
    from filterprior.figures.plots import plot_accuracy_vs_size

    try:
        with tables_lock(out_dir):
            plot_accuracy_vs_size(results_csv, out_dir / PLOT_FILE, metric)
    except Exception as exc:  # the tables are written; a plotting bug must not hide that
        log(f"no {PLOT_FILE}: plotting failed: {type(exc).__name__}: {exc}")


def run_study(
    base_cfg: TrainConfig,
    out_dir: str | Path,
    sizes: Sequence[int] = DEFAULT_SIZES,
    methods: Sequence[str] | None = None,
    split_seeds: Sequence[int] = DEFAULT_SPLIT_SEEDS,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
    train_fn: TrainFn | None = None,
    progress: bool = True,
    methods_file: str | Path | None = None,
    epochs_by_size: dict[int, int] | None = None,
    overwrite: bool = False,
    command_line_keys: Sequence[str] = (),
    workers_per_device: int | None = None,
    hide_test: bool = False,
) -> Path:
    """Train every unfinished cell of this shard; write results.csv, summary.md, accuracy.png.

    Returns the path of results.csv. Raises StudyFailed (after writing the tables) if any cell failed.
    Raises changes.CellsChanged (a UserError; nothing written) when finished cells of the grid were run
    with another config, unless overwrite=True: then this shard's changed cells are retrained.
    With the real engine, the data and models are checked first (UserError before anything is written).
    train_fn defaults to filterprior.train.engine.train; with workers > 1 it must be picklable (a
    module-level function). command_line_keys: config keys in base_cfg given on the command line; they
    beat a method's own value for the key (grid.cell_config). workers_per_device: K workers on each
    visible CUDA GPU (ignored without one). hide_test: for tuning, the cells train without their test read
    (`test: false`) and the cell lines, summary.md and accuracy.png show the validation pool only; the
    same study run without it then reads each finished cell's test set from its weights, retraining nothing.
    """
    _refuse_torchrun()
    out_dir = Path(out_dir)
    metric = "val" if hide_test else "test"  # what summary.md and accuracy.png show
    chosen = select_methods(load_methods(methods_file), methods)
    method_order = [m.name for m in chosen]
    grid = build_grid(list(sizes), chosen, list(split_seeds))
    mine = shard_cells(grid, shard)
    _check_epochs_by_size(epochs_by_size, sizes)
    gpus = visible_gpus()
    if workers_per_device is not None:
        _check_positive_int("workers_per_device", workers_per_device)
        workers = workers_for(workers_per_device, gpus, workers)
    if workers is None:
        workers = default_workers()
    _check_positive_int("workers", workers)

    configs = {cell: cell_config(base_cfg, cell, epochs_by_size, command_line_keys) for cell in grid}
    if hide_test:  # no test read at all while tuning; the study run without the flag reads it from the weights
        configs = {cell: dataclasses.replace(cfg, test=False) for cell, cfg in configs.items()}
    hashes = {cell: cell_hash(cfg) for cell, cfg in configs.items()}
    # a cell recorded with the legacy hash counts too (its cell.json is brought up to date below)
    expected = {cell.rel_dir.as_posix(): (hashes[cell], cell_hash(configs[cell], legacy=True)) for cell in grid}

    states = {cell: cell_state(out_dir / cell.rel_dir, configs[cell]) for cell in grid}
    changed = [cell for cell in grid if states[cell] == CHANGED]
    if changed and not overwrite:
        raise CellsChanged(out_dir, [changed_cell(out_dir, cell, configs[cell]) for cell in changed])

    candidates = [cell for cell in mine if states[cell] != FINISHED]
    busy = [cell for cell in candidates if locked_elsewhere(out_dir / cell.rel_dir)]
    todo = [cell for cell in candidates if cell not in busy]
    workers = max(1, min(workers, len(todo)))
    threads = base_cfg.threads if base_cfg.threads is not None else threads_per_worker(workers)
    jobs = [_make_job(out_dir, cell, configs[cell], hashes[cell], threads, train_fn, states[cell] == CHANGED)
            for cell in todo]
    if train_fn is None and jobs:  # what the engine needs; a given train_fn may need neither data nor model
        check_configs([job.cfg for job in jobs])  # one clear error now, not one per cell, nothing written

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="study", unit="cell", disable=not (progress and sys.stdout.isatty()))
    log = tqdm.write if progress else (lambda _message: None)
    note = tqdm.write  # notes about the input are shown even without progress (--quiet): nothing silently ignored
    for line in _precedence_notes(chosen, command_line_keys, sorted(set(sizes)), epochs_by_size):
        note(line)
    if workers_per_device is not None and gpus == 0:
        note("note: no CUDA GPU is visible, so --workers-per-device changes nothing here")
    devices = worker_devices(workers, gpus) if workers > 1 else []
    shard_note = "" if shard is None else f" (shard {shard[0]}/{shard[1]})"
    replaced = sum(states[cell] == CHANGED for cell in todo)
    resuming = sum(states[cell] == UNFINISHED and resumable(out_dir / cell.rel_dir, configs[cell]) for cell in todo)
    untested = sum(states[cell] == UNTESTED for cell in todo)
    log(
        f"study {out_dir}{shard_note}: {len(mine)} cells, {sum(states[c] == FINISHED for c in mine)} already "
        f"finished, {len(jobs)} to run with {workers} worker(s) x {threads} thread(s)"
        + (f" on {', '.join(sorted(set(d for d in devices if d)))}" if any(devices) else "")
        + (f"; {resuming} interrupted cell(s) go on from their checkpoints" if resuming else "")
        + (f"; {untested} cell(s) trained without their test read (--hide-test) are tested from their weights, "
           "not retrained" if untested else "")
        + (f"; {replaced} finished cell(s) of another config replaced (--overwrite)" if replaced else "")
    )
    if busy:
        log(f"{len(busy)} cell(s) running in another study process, skipped: {_labels(busy)}")

    out_dir.mkdir(parents=True, exist_ok=True)
    update_records(out_dir, [cell for cell in grid if states[cell] == FINISHED], configs, hashes)
    failures: list[tuple[str, str]] = []
    elsewhere: list[str] = [cell.label for cell in busy]
    runner = run_serially(jobs, log) if workers == 1 else run_in_pool(jobs, workers, log, devices)
    try:
        with _sigterm_as_interrupt():
            for job, outcome in runner:
                if outcome.status == "done":
                    row = read_finished_cell(job.run_dir, out_dir)
                    log(_cell_line(row, hide_test) if row is not None else f"{job.label}: finished")
                elif outcome.status == "busy":
                    elsewhere.append(job.label)
                    log(f"{job.label}: running in another study process, skipped")
                elif outcome.status == "finished":
                    log(f"{job.label}: finished meanwhile by another study process")
                else:
                    failures.append((job.label, outcome.error or "failed"))
                    log(f"FAILED {job.label}: {outcome.error}")
                _write_tables(out_dir, expected, method_order, metric)
                bar.update(1)
    finally:
        runner.close()  # an interrupted pool stops its workers now, not when the generator is collected
        bar.close()

    results_csv = _write_tables(out_dir, expected, method_order, metric)
    _write_plot(results_csv, out_dir, log, metric)
    if elsewhere:
        note(f"note: {len(elsewhere)} cell(s) were running in another study process and are not in the tables "
            f"yet ({_labels(elsewhere)}); that process adds them when they finish")
    if failures:
        raise StudyFailed(failures, results_csv)
    return results_csv


def _labels(cells: Sequence[Cell | str], shown: int = 4) -> str:
    names = [c if isinstance(c, str) else c.label for c in cells]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _refuse_torchrun() -> None:
    """Under torchrun every rank would run the study and each cell's training would join the ranks'
    group, so the ranks, busy with different cells, would average each other's gradients: results
    silently mixed (or a hang). A study spreads its cells over its own workers instead."""
    from filterprior.train.distributed import ranks

    world = ranks().world
    if world > 1:
        raise UserError(
            f"a study does not run under torchrun (WORLD_SIZE={world}): its cells are one-process runs, and "
            "under torchrun the ranks would train different cells in one group and mix their gradients; run "
            "`filterprior study` without torchrun and spread the cells with --workers (CPU) or "
            "--workers-per-device (GPUs)"
        )


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} {value!r} is not valid: expected an integer >= 1")


def _check_epochs_by_size(epochs_by_size: dict[int, int] | None, sizes: Sequence[int]) -> None:
    unknown = sorted(set(epochs_by_size or {}) - set(sizes))
    if unknown:
        raise UserError(
            f"--epochs-by-size gives epochs for {', '.join(map(str, unknown))} images per class, which "
            f"--sizes ({','.join(map(str, sizes))}) does not list; expected sizes of the study"
        )


def _precedence_notes(
    methods: Sequence, command_line_keys: Sequence[str], sizes: Sequence[int],
    epochs_by_size: dict[int, int] | None = None,
) -> list[str]:
    """One note for each method key the command line replaces at the study's `sizes`: a key a method sets
    only at other sizes is not replaced anywhere, so it gets no note."""
    notes = []
    for method in methods:
        beaten = method_keys_overridden(method, command_line_keys)
        for key in beaten:
            at = [size for size in sizes if key in method_keys(method, size)]
            if not at:
                continue
            where = "" if len(at) == len(sizes) else f" at {', '.join(map(str, at))} images a class"
            notes.append(f"note: method {method.name} sets {key}{where} in its methods file; the command line's "
                         f"{key} is used instead (the command line wins)")
        if epochs_by_size and "epochs" not in beaten:
            # only the sizes where the method itself sets epochs (shared, or in its by_size at that size)
            where = [(size, epochs) for size, epochs in sorted(epochs_by_size.items())
                     if "epochs" in method_keys(method, size)]
            if where:
                given = ",".join(f"{size}={epochs}" for size, epochs in where)
                notes.append(f"note: method {method.name} sets epochs in its methods file; --epochs-by-size "
                             f"{given} is used instead (the command line wins)")
    return notes


class _Terminated(KeyboardInterrupt):
    """SIGTERM (kill, a cluster's time limit) handled as Ctrl-C: workers stopped, 'interrupted' said."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum, _frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _make_job(
    out_dir: Path, cell: Cell, cfg: TrainConfig, hash_: str, threads: int, train_fn: TrainFn | None,
    replace: bool = False,
) -> Job:
    run_cfg = dataclasses.replace(cfg, threads=threads, progress=False)
    record = {
        "method": cell.method.name,
        "images_per_class": cell.images_per_class,
        "split_seed": cell.split_seed,
        "config_hash": hash_,
        "recipe_hash": recipe_hash(cfg),
        "overrides": list(cell.method.overrides_at(cell.images_per_class)),
        "config": config_to_dict(cfg),
    }
    return Job(cell.label, run_cfg, out_dir / cell.rel_dir, record, train_fn, replace)
