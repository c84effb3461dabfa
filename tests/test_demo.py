"""The offline demo end to end, as a user runs it: a small study with the bundled bank and its report."""

from __future__ import annotations

import pytest

from filterprior.commands import main


@pytest.mark.slow
def test_demo_runs_offline_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "3"]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "| none |" in printed
    for name in ("report.html", "bank.png", "results.csv", "summary.md"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html


def explode(cfg, run_dir, resume=False, quiet=False):
    raise RuntimeError("boom")


def test_a_failed_demo_run_is_one_error_line(tmp_path, capsys, monkeypatch):
    assert main(["demo", "--out", str(tmp_path / "d0"), "--epochs", "-1"]) == 2
    assert "demo --epochs -1 is not valid: expected 1 or more" in capsys.readouterr().err
    assert not (tmp_path / "d0").exists()
    from filterprior.study import runner

    real = runner.run_study
    monkeypatch.setattr(runner, "run_study", lambda *a, **kw: real(*a, **kw, train_fn=explode, workers=1))
    assert main(["demo", "--out", str(tmp_path / "d1"), "--epochs", "1"]) == 2  # StudyFailed, not a traceback
    err = capsys.readouterr().err
    assert err.startswith("error: demo: 2 of 2 runs failed") and "RuntimeError: boom" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
