"""How a study's cells run: one after another in this process (one worker), or in a pool of worker
processes; either way a heartbeat line every HEARTBEAT_S says which cells train and at which epoch, since
the cells' own output is off."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterator, Sequence

from filterprior.results import CELL_FILE, METRICS_FILE
from filterprior.study.cell_job import Job, Outcome, run_job
from filterprior.study.workers import init_worker
from filterprior.train.run_log import time_left


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


HEARTBEAT_S = 15.0  # a "still running" line this often while cells train quietly (their own output is off)


def run_serially(jobs: Sequence[Job], log: Callable[[str], None] = lambda _m: None) -> Iterator[tuple[Job, Outcome]]:
    # One cell at a time in this process; a thread says every HEARTBEAT_S which epoch it is at, as the
    # pool does for its workers, so a 15-minute cell is not 15 silent minutes.
    started, started_wall = time.monotonic(), time.time()
    outcomes: Counter[str] = Counter()
    for job in jobs:
        stop = threading.Event()

        def beat(job: Job = job) -> None:
            while not stop.wait(HEARTBEAT_S):
                training = [job] if _started_since(job, started_wall) else []
                log(_heartbeat_line(outcomes, len(jobs), started, training))

        thread = threading.Thread(target=beat, name="study-heartbeat", daemon=True)
        thread.start()
        try:
            outcome = run_job(job)
        finally:
            stop.set()
            thread.join()
        outcomes[outcome.status] += 1
        yield job, outcome


# How the heartbeat names the outcomes other than "done", so a skipped or failed cell is not counted done.
_NOT_DONE = {"busy": "running elsewhere", "finished": "finished elsewhere", "failed": "failed"}


def _heartbeat_line(outcomes: Counter[str], total: int, started: float, training: Sequence[Job]) -> str:
    where = ", ".join(f"{job.label} {_doing(job)}" for job in training)
    others = "".join(f", {outcomes[status]} {name}" for status, name in _NOT_DONE.items() if outcomes[status])
    return (f"  ... {outcomes['done']}/{total} done{others}, {time.monotonic() - started:.0f} s elapsed; "
            f"training: {where or 'starting'}")


def run_in_pool(
    jobs: Sequence[Job], workers: int, log: Callable[[str], None] = lambda _m: None,
    devices: Sequence[str | None] = (),
) -> Iterator[tuple[Job, Outcome]]:
    # 'spawn': fresh interpreters, safe with torch threads and CUDA (fork is not).
    context = multiprocessing.get_context("spawn")
    device_queue = context.Queue()
    for device in devices or [None] * workers:
        device_queue.put(device or "")
    started, started_wall = time.monotonic(), time.time()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                             initargs=(os.getpid(), device_queue)) as pool:
        futures: dict[Future, Job] = {pool.submit(run_job, job): job for job in jobs}
        pending = set(futures)
        outcomes: Counter[str] = Counter()
        try:
            while pending:
                done, pending = wait(pending, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
                if not done:
                    # The executor marks queued calls "running" too; a cell trains once its worker has
                    # rewritten its cell.json (until then its directory may hold an earlier run's files).
                    training = [futures[f] for f in pending
                                if f.running() and _started_since(futures[f], started_wall)]
                    log(_heartbeat_line(outcomes, len(jobs), started, training))
                for future in done:
                    try:
                        outcome = future.result()
                    except Exception as exc:  # the worker process died (e.g. out of memory)
                        outcome = Outcome("failed", f"worker process failed: {type(exc).__name__}: {exc}")
                    outcomes[outcome.status] += 1
                    yield futures[future], outcome
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): stop the workers' cells now rather than wait for them.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _started_since(job: Job, wall_time: float) -> bool:
    try:
        return (job.run_dir / CELL_FILE).stat().st_mtime >= wall_time
    except OSError:
        return False


def _doing(job: Job) -> str:
    """What a started cell is at: its epoch, or its test read (a cell trained by a --hide-test study)."""
    if (job.run_dir / METRICS_FILE).is_file():  # written when training ended: the cell is being tested
        return "reading the test set from its weights"
    return cell_progress(job.run_dir / "metrics.csv", job.cfg.epochs)


def cell_progress(metrics_csv: Path, epochs: int) -> str:
    """'epoch 17/320, ~26 min left' from a cell's metrics.csv (a header, then one row per epoch). The time
    left is the epochs to go at the mean pace of those done: time_s is the run's training time so far, which
    a checkpoint carries over a resume. Without a time_s column or a whole last row, the epoch alone."""
    try:
        lines = metrics_csv.read_text().splitlines()
    except OSError:
        lines = []
    done = max(0, len(lines) - 1)
    text = f"epoch {done}/{epochs}"
    if done == 0:
        return text
    row = dict(zip(lines[0].split(","), lines[-1].split(",")))
    try:
        left = time_left(float(row["time_s"]), int(row["epoch"]), epochs)
    except (KeyError, ValueError):  # no time_s column (a file of another program), or a damaged row
        return text
    return f"{text}, {left} left" if done < epochs else text
