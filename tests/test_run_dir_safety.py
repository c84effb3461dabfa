"""`train` never replaces a run it was not asked to replace, and default run directories never collide."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["--data", "mini", "--model", "simplecnn", "--images-per-class", "2", "threads=1",
        "filter_pictures=false", "progress=false"]


def _train(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "filterprior", "train", *ARGS, *extra], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    """One finished run, trained once for the tests of this file (each works on its own copy)."""
    where = tmp_path_factory.mktemp("trained")
    assert _train(where, "--out", str(where / "run"), "--epochs", "1", "--quiet").returncode == 0
    return where / "run"


@pytest.fixture
def unfinished_run(one_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(one_run, out)
    (out / "metrics.json").unlink()  # as if killed before the end: config, checkpoint and tb/ stay
    return out


@pytest.mark.slow
def test_an_unfinished_run_is_not_replaced_without_being_asked(tmp_path, unfinished_run):
    out = unfinished_run
    config_before = (out / "config.yaml").read_bytes()
    checkpoint_before = (out / "checkpoint.pt").read_bytes()
    proc = _train(tmp_path, "--out", str(out), "--epochs", "2", "--model", "mynet-small")
    assert proc.returncode == 2
    assert "not empty" in proc.stderr and "--resume" in proc.stderr and "--overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "config.yaml").read_bytes() == config_before
    assert (out / "checkpoint.pt").read_bytes() == checkpoint_before


@pytest.mark.slow
def test_overwrite_starts_afresh_and_deletes_only_run_directories(tmp_path, unfinished_run):
    out = unfinished_run
    proc = _train(tmp_path, "--out", str(out), "--epochs", "1", "--overwrite", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (out / "metrics.json").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    proc = _train(tmp_path, "--out", str(other), "--epochs", "1", "--overwrite")
    assert proc.returncode == 2 and "holds no run" in proc.stderr
    assert (other / "thesis.tex").read_text() == "keep me"


def test_two_default_run_directories_made_in_one_second_differ(tmp_path, monkeypatch):
    from filterprior.commands.train import _new_default_dir

    monkeypatch.chdir(tmp_path)
    made = {_new_default_dir("simplecnn-mini") for _ in range(20)}
    assert len(made) == 20 and all(path.is_dir() for path in made)
