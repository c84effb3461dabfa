"""Whole study processes from the command line: killing a study takes its workers with it (issue 12 item
8), and two shards started at once into one directory write every row once (issue 14 part 4)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import filterprior
from filterprior.study import read_results_csv

SRC = Path(filterprior.__file__).resolve().parents[1]  # the subprocesses run the same source as this test


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever adopted it, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_killing_the_study_ends_its_workers(tmp_path, how):
    out = tmp_path / "study"
    stderr = tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "filterprior", "study", "--data", "mini", "--sizes", "5", "--methods", "none,l2",
               "--split-seeds", "0", "--workers", "2", "--epochs", "3000", "--out", str(out), "threads=1"]
    with open(stderr, "w") as err:
        parent = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # both workers started, and each trains its cell
            workers = [p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)]
            started = [(out / m / "n5/split0/cell.json").is_file() for m in ("none", "l2")]
            if len(workers) == 2 and all(started):
                break
            assert parent.poll() is None, stderr.read_text()
            time.sleep(0.2)
        else:
            pytest.fail(f"the study's workers did not start: {stderr.read_text()}")
        parent.send_signal(how)
        parent.wait(timeout=30)
        gone_by = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < gone_by:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), f"workers {workers} outlived the study killed by {how!r}"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in workers:  # only if the test failed: do not leave them training
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    if how == signal.SIGTERM:  # handled as an interrupt: the study says how to resume
        assert "interrupted; to resume: filterprior study --data mini" in stderr.read_text()
    assert not (out / "none/n5/split0/metrics.json").exists()  # an interrupted cell: redone on the next run


@pytest.mark.slow
def test_two_shards_at_once_into_one_directory_write_every_row_once(tmp_path):
    out = tmp_path / "study"
    command = [sys.executable, "-m", "filterprior", "study", "--data", "mini", "--sizes", "2", "--methods",
               "none,l2", "--split-seeds", "0-2", "--workers", "1", "--epochs", "1", "--out", str(out), "threads=1",
               "batch_size=8", "filter_pictures=false"]
    shards = [subprocess.Popen(command + ["--shard", f"{i}/2"], env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [shard.communicate(timeout=300)[0] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], outputs
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = sorted((r["method"], int(r["images_per_class"]), int(r["split_seed"])) for r in rows)
    assert cells == sorted((m, 2, s) for m in ("none", "l2") for s in (0, 1, 2))  # each exactly once
    assert len(read_results_csv(out / "results.csv")) == 6  # and every row parses
    summary = (out / "summary.md").read_text()
    assert summary.count("## 2 images per class") == 1
    assert summary.count("| none | 3 |") == 1 and summary.count("| l2 | 3 |") == 1
