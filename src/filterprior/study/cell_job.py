"""One cell of a study, as a worker process runs it: under the cell's lock, from its own checkpoint when an
earlier run of the same config was interrupted (else from an empty directory), and with a failure message
that is true about where its traceback is."""

from __future__ import annotations

import dataclasses
import json
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from filterprior.config import TrainConfig
from filterprior.data.pipeline import with_absolute_data_paths
from filterprior.errors import UserError
from filterprior.study.changes import read_record
from filterprior.study.grid import same_cell
from filterprior.study.locks import CELL_LOCK_FILE, cell_lock
from filterprior.results import CELL_FILE, METRICS_FILE
from filterprior.study.workers import pin_device
from filterprior.train.checkpoint import CHECKPOINT_FILE, load_checkpoint
from filterprior.train.resume import resume_changes
from filterprior.train.testset import awaits_test_read, read_test_later
from filterprior.utils import atomic_write_text

TrainFn = Callable[..., dict]  # train(cfg, run_dir, resume=False, quiet=False) -> metrics dict
ERROR_FILE = "error.txt"


@dataclass(frozen=True)
class Job:
    """What a worker process needs to run one cell (picklable for the 'spawn' start method)."""

    label: str
    cfg: TrainConfig
    run_dir: Path
    cell_record: dict
    train_fn: TrainFn | None
    replace: bool = False  # the cell holds a finished run of another config that the user asked to replace


@dataclass(frozen=True)
class Outcome:
    """How a cell went: 'done', 'failed' (error says why and where the traceback is), 'busy' (another
    process holds its lock) or 'finished' (another process finished it since the study started)."""

    status: str
    error: str | None = None


FINISHED, CHANGED, UNFINISHED = "finished", "changed", "unfinished"
UNTESTED = "untested"  # finished without its test read (a --hide-test study), and this config reads test
TRACEBACK_TAIL_LINES = 6  # in the message itself when error.txt cannot be written


def cell_state(run_dir: Path, cfg: TrainConfig) -> str:
    """FINISHED (metrics.json and a cell.json of this config: grid.same_cell, so a cell recorded with the
    legacy hash counts), CHANGED (metrics.json, but cell.json missing, unreadable or of another config)
    or UNFINISHED (no metrics.json: never run, interrupted or failed; run_job resumes it from its checkpoint
    when that is of this config, else redoes it from an empty directory). A finished cell trained without its
    test read is UNTESTED when `cfg` reads test (cfg.test): run_job then reads it from the cell's weights."""
    if not (run_dir / METRICS_FILE).is_file():
        return UNFINISHED
    record = read_record(run_dir / CELL_FILE)
    if record is None or not same_cell(record.get("config_hash"), cfg):
        return CHANGED
    return UNTESTED if cfg.test and awaits_test_read(run_dir) else FINISHED


def run_job(job: Job) -> Outcome:
    """Train one cell, holding its lock: resumed from its checkpoint when an interrupted run of this config
    left one (the engine seeds each epoch from (seed, epoch), so the result is the one a fresh run gives),
    else from an empty directory."""
    lock = cell_lock(job.run_dir)
    try:
        if not lock.acquire():
            return Outcome("busy")
    except OSError as exc:
        return Outcome("failed", f"cannot lock {job.run_dir / CELL_LOCK_FILE}: {exc}")
    try:
        state = cell_state(job.run_dir, job.cfg)
        if state == FINISHED:  # another study process finished it after this one looked
            return Outcome("finished")
        if state == UNTESTED:  # trained without its test read (study --hide-test): read it, retrain nothing
            atomic_write_text(job.run_dir / CELL_FILE, json.dumps(job.cell_record, indent=2) + "\n")
            read_test_later(dataclasses.replace(job.cfg, device=pin_device(job.cfg.device)), job.run_dir)
            return Outcome("done")
        if state == CHANGED and not job.replace:
            return Outcome("failed", f"{job.run_dir} was finished meanwhile by another process with another "
                                      "config; it is left as it is (rerun with --overwrite to replace it)")
        resume = state == UNFINISHED and resumable(job.run_dir, job.cfg)
        if resume:
            (job.run_dir / ERROR_FILE).unlink(missing_ok=True)  # the failure it recorded is being retried
        else:
            _clear(job.run_dir)  # clean redo: no files from an interrupted or replaced run survive
        # written anew either way: its time says the cell started in this study process (the heartbeat)
        atomic_write_text(job.run_dir / CELL_FILE, json.dumps(job.cell_record, indent=2) + "\n")
        train_fn = job.train_fn
        if train_fn is None:
            from filterprior.train.engine import train as train_fn
        cfg = dataclasses.replace(job.cfg, device=pin_device(job.cfg.device))
        train_fn(cfg, job.run_dir, resume=resume, quiet=True)
        if not (job.run_dir / METRICS_FILE).is_file():
            raise RuntimeError(f"training returned without writing {job.run_dir / METRICS_FILE}")
        return Outcome("done")
    except Exception as exc:
        return Outcome("failed", _record_failure(job.run_dir, exc))
    finally:
        lock.release()


def resumable(run_dir: Path, cfg: TrainConfig) -> bool:
    """True when an unfinished cell holds a readable checkpoint under a cell.json of `cfg`, and the engine
    would resume it with `cfg` (threads and device may differ: train.resume.RESUME_MAY_CHANGE). Anything
    else (no checkpoint, a damaged one, one of another config) is redone from scratch."""
    record = read_record(run_dir / CELL_FILE)
    if record is None or not same_cell(record.get("config_hash"), cfg):
        return False
    try:
        resume_changes(run_dir, with_absolute_data_paths(cfg), load_checkpoint(run_dir / CHECKPOINT_FILE))
    except UserError:  # missing, damaged, not a checkpoint, or of another config
        return False
    return True


def _clear(run_dir: Path) -> None:
    """Empty the cell's directory, all but its lock file (another process may be waiting on that inode)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for entry in run_dir.iterdir():
        if entry.name == CELL_LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _record_failure(run_dir: Path, exc: Exception) -> str:
    """The error line for the report; the traceback goes to error.txt, or, where that cannot be written
    (disk full, no permission), its last lines go into the message itself."""
    message = f"{type(exc).__name__}: {exc}"
    details = traceback.format_exc()
    try:
        atomic_write_text(run_dir / ERROR_FILE, details)
    except Exception as write_error:  # noqa: BLE001 - best effort: the message must still get out
        tail = "\n".join(details.rstrip().splitlines()[-TRACEBACK_TAIL_LINES:])
        return (f"{message} (could not write {run_dir / ERROR_FILE}: {type(write_error).__name__}: "
                f"{write_error}; the traceback ends:\n{tail})")
    return f"{message} (traceback in {run_dir / ERROR_FILE})"
