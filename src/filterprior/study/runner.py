"""Run a study's cells: in parallel worker processes, resumable, and sliceable into shards.

A cell is finished when its run directory holds metrics.json (the engine writes it last) and a
cell.json whose config hash matches the cell's current config. Anything else is redone from an
empty directory: an interrupted cell (no metrics.json) and a cell whose config changed alike.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from filterprior.config import TrainConfig, config_to_dict
from filterprior.errors import UserError
from filterprior.study.grid import (
    DEFAULT_SIZES,
    DEFAULT_SPLIT_SEEDS,
    Cell,
    build_grid,
    cell_config,
    cell_hash,
    shard_cells,
)
from filterprior.study.methods import load_methods, select_methods
from filterprior.study.preflight import check_configs
from filterprior.results import (
    CELL_FILE,
    METRICS_FILE,
    ResultRow,
    collect_results,
    read_finished_cell,
    write_results_csv,
    write_summary,
)
from filterprior.utils import atomic_write_text

TrainFn = Callable[..., dict]  # train(cfg, run_dir, resume=False, quiet=False) -> metrics dict

RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.md"
PLOT_FILE = "accuracy.png"
ERROR_FILE = "error.txt"


class StudyFailed(Exception):
    """Some cells failed; the others finished and their results are written."""

    def __init__(self, failures: list[tuple[str, str]], results_csv: Path):
        self.failures = failures  # (cell label, error message)
        self.results_csv = results_csv
        listing = "\n".join(f"  {label}: {error}" for label, error in failures)
        super().__init__(f"{len(failures)} cell(s) failed:\n{listing}")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset / cgroup CPU pinning
    except AttributeError:
        return os.cpu_count() or 1


def default_workers() -> int:
    """Worker processes when --workers is not given: one per core (each with one torch thread), at most 8.

    Small-data cells train on small batches, which do not scale across threads: on the 2-core
    development machine 2 workers x 1 thread ran a grid 11 % faster than 1 worker x 2 threads
    (benchmarks/study_workers.py, RESULTS.md). The cap keeps memory modest (each worker holds its
    own copy of the dataset, ~0.4 GB for CIFAR-10).
    """
    return max(1, min(8, available_cpus()))


def threads_per_worker(workers: int) -> int:
    return max(1, available_cpus() // workers)


@dataclass(frozen=True)
class _Job:
    """What a worker process needs to run one cell (picklable for the 'spawn' start method)."""

    label: str
    cfg: TrainConfig
    run_dir: Path
    cell_record: dict
    train_fn: TrainFn | None


def _run_job(job: _Job) -> str | None:
    """Train one cell from an empty directory; None on success, else the error (also in error.txt)."""
    try:
        if job.run_dir.exists():
            shutil.rmtree(job.run_dir)  # clean redo: no files from an interrupted or stale run survive
        job.run_dir.mkdir(parents=True)
        atomic_write_text(job.run_dir / CELL_FILE, json.dumps(job.cell_record, indent=2) + "\n")
        train_fn = job.train_fn
        if train_fn is None:
            from filterprior.train.engine import train as train_fn
        train_fn(job.cfg, job.run_dir, resume=False, quiet=True)
        if not (job.run_dir / METRICS_FILE).is_file():
            raise RuntimeError(f"training returned without writing {job.run_dir / METRICS_FILE}")
        return None
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        try:
            atomic_write_text(job.run_dir / ERROR_FILE, traceback.format_exc())
        except OSError:
            pass  # the error still reaches the report through the return value
        return message


def _run_serially(jobs: Sequence[_Job]) -> Iterator[tuple[_Job, str | None]]:
    for job in jobs:
        yield job, _run_job(job)


HEARTBEAT_S = 15.0  # a "still running" line this often while cells train quietly in workers


def _run_in_pool(
    jobs: Sequence[_Job], workers: int, log: Callable[[str], None] = lambda _m: None
) -> Iterator[tuple[_Job, str | None]]:
    # 'spawn': fresh interpreters, safe with torch threads and CUDA (fork is not).
    context = multiprocessing.get_context("spawn")
    started, started_wall = time.monotonic(), time.time()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[Future, _Job] = {pool.submit(_run_job, job): job for job in jobs}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
                if not done:
                    # The executor marks queued calls "running" too; a cell trains once its worker has
                    # rewritten its cell.json (until then its directory may hold an earlier run's files).
                    training = [futures[f] for f in pending
                                if f.running() and _started_since(futures[f], started_wall)]
                    where = ", ".join(f"{job.label} epoch {_epochs_done(job)}/{job.cfg.epochs}" for job in training)
                    log(f"  ... {len(jobs) - len(pending)}/{len(jobs)} done, {time.monotonic() - started:.0f} s "
                        f"elapsed; training: {where or 'starting'}")
                for future in done:
                    try:
                        error = future.result()
                    except Exception as exc:  # the worker process died (e.g. out of memory)
                        error = f"worker process failed: {type(exc).__name__}: {exc}"
                    yield futures[future], error
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _started_since(job: _Job, wall_time: float) -> bool:
    try:
        return (job.run_dir / CELL_FILE).stat().st_mtime >= wall_time
    except OSError:
        return False


def _epochs_done(job: _Job) -> int:
    """Epochs the cell has logged so far (metrics.csv: a header, then one row per epoch)."""
    try:
        with open(job.run_dir / "metrics.csv", "rb") as handle:
            return max(0, sum(1 for _ in handle) - 1)
    except OSError:
        return 0


def _cell_line(row: ResultRow) -> str:
    val = "—" if row.val_acc is None else f"{100 * row.val_acc:.2f}%"
    return (
        f"{row.method:<16} n={row.images_per_class:<4} split={row.split_seed:<3} "
        f"test {100 * row.test_acc:6.2f}%  val {val:>7}  {row.wall_time_s:8.1f} s"
    )


def _write_tables(out_dir: Path, expected: dict[str, str], method_order: list[str]) -> Path:
    rows = collect_results(out_dir, expected)
    results = write_results_csv(rows, out_dir / RESULTS_FILE)
    write_summary(rows, out_dir / SUMMARY_FILE, method_order)
    return results


def _write_plot(results_csv: Path, out_dir: Path, log: Callable[[str], None]) -> None:
    try:
        from filterprior.figures.plots import plot_accuracy_vs_size
    except ImportError as exc:
        log(f"no {PLOT_FILE}: filterprior.figures.plots is not available ({exc})")
        return
    try:
        plot_accuracy_vs_size(results_csv, out_dir / PLOT_FILE)
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
) -> Path:
    """Train every unfinished cell of this shard; write results.csv, summary.md, accuracy.png.

    Returns the path of results.csv. Raises StudyFailed (after writing the tables) if any cell failed.
    With the real engine, the data and models are checked first (UserError before anything is written).
    train_fn defaults to filterprior.train.engine.train; with workers > 1 it must be picklable (a
    module-level function).
    """
    out_dir = Path(out_dir)
    chosen = select_methods(load_methods(methods_file), methods)
    method_order = [m.name for m in chosen]
    grid = build_grid(list(sizes), chosen, list(split_seeds))
    mine = shard_cells(grid, shard)
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers {workers!r} is not valid: expected an integer >= 1")

    configs = {cell: cell_config(base_cfg, cell, epochs_by_size) for cell in grid}
    hashes = {cell: cell_hash(cfg) for cell, cfg in configs.items()}
    expected = {cell.rel_dir.as_posix(): hashes[cell] for cell in grid}

    todo = [cell for cell in mine if not _is_finished(out_dir, cell, hashes[cell])]
    workers = max(1, min(workers, len(todo)))
    threads = base_cfg.threads if base_cfg.threads is not None else threads_per_worker(workers)
    jobs = [_make_job(out_dir, cell, configs[cell], hashes[cell], threads, train_fn) for cell in todo]
    if train_fn is None and jobs:  # what the engine needs; a given train_fn may need neither data nor model
        check_configs([job.cfg for job in jobs])  # one clear error now, not one per cell, nothing written

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="study", unit="cell", disable=not (progress and sys.stdout.isatty()))
    log = tqdm.write if progress else (lambda _message: None)
    shard_note = "" if shard is None else f" (shard {shard[0]}/{shard[1]})"
    log(
        f"study {out_dir}{shard_note}: {len(mine)} cells, {len(mine) - len(jobs)} already finished, "
        f"{len(jobs)} to run with {workers} worker(s) x {threads} thread(s)"
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, str]] = []
    runner = _run_serially(jobs) if workers == 1 else _run_in_pool(jobs, workers, log)
    try:
        for job, error in runner:
            if error is None:
                row = read_finished_cell(job.run_dir, out_dir)
                log(_cell_line(row) if row is not None else f"{job.label}: finished")
            else:
                failures.append((job.label, error))
                log(f"FAILED {job.label}: {error} (traceback in {job.run_dir / ERROR_FILE})")
            _write_tables(out_dir, expected, method_order)
            bar.update(1)
    finally:
        bar.close()

    results_csv = _write_tables(out_dir, expected, method_order)
    _write_plot(results_csv, out_dir, log)
    if failures:
        raise StudyFailed(failures, results_csv)
    return results_csv


def _is_finished(out_dir: Path, cell: Cell, expected_hash: str) -> bool:
    run_dir = out_dir / cell.rel_dir
    if not (run_dir / METRICS_FILE).is_file() or not (run_dir / CELL_FILE).is_file():
        return False
    try:
        saved = json.loads((run_dir / CELL_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False  # unreadable record: redo rather than trust it
    return isinstance(saved, dict) and saved.get("config_hash") == expected_hash


def _make_job(
    out_dir: Path, cell: Cell, cfg: TrainConfig, hash_: str, threads: int, train_fn: TrainFn | None
) -> _Job:
    run_cfg = dataclasses.replace(cfg, threads=threads, progress=False)
    record = {
        "method": cell.method.name,
        "images_per_class": cell.images_per_class,
        "split_seed": cell.split_seed,
        "config_hash": hash_,
        "overrides": list(cell.method.overrides),
        "config": config_to_dict(cfg),
    }
    return _Job(cell.label, run_cfg, out_dir / cell.rel_dir, record, train_fn)
