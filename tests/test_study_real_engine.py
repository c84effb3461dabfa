"""A study with the real training engine: an end-to-end grid on the mini set, and the checks of data, model,
sizes and bank that stop a study before its first cell."""

from __future__ import annotations

import json
import time

import pytest

from filterprior.banks.bank import BANKS_DIR as BANKS
from filterprior.config import TrainConfig, apply_overrides
from filterprior.study import execution, read_results_csv, run_study


@pytest.mark.slow
def test_end_to_end_with_the_real_engine(tmp_path):
    base = apply_overrides(TrainConfig(), ["data.dataset=mini", "epochs=1", "model.name=mynet-small", "device=cpu",
                                           "batch_size=32", "filter_pictures=false"])
    out = tmp_path / "study"
    results = run_study(base, out, sizes=[5], methods=["none"], split_seeds=[0, 1], workers=1, progress=False)
    rows = read_results_csv(results)
    assert [(r.method, r.images_per_class, r.split_seed) for r in rows] == [("none", 5, 0), ("none", 5, 1)]
    for row in rows:  # each row holds what its run directory recorded
        metrics = json.loads((out / row.run_dir / "metrics.json").read_text())
        assert row.test_acc == metrics["test_acc"] and row.val_acc == metrics["val_acc"]
        assert row.wall_time_s == pytest.approx(metrics["wall_time_s"], rel=1e-3, abs=1e-3)
        assert metrics["images_per_class"] == 5 and metrics["split_seed"] == row.split_seed
    assert (out / "none/n5/split1/config.yaml").is_file()
    assert "| none | 2 |" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data", "nope"], "dataset 'nope' is neither a known name nor an existing path"),
        (["--data", "mini", "model.name=nope"], "unknown model 'nope'"),
        (["--data", "mini", "--sizes", "5,1000"], "images_per_class=1000 is too many"),
        # a bank that does not fit the model: filternet-s2's networks for airnet
        (["--data", "mini", "--methods", "none,transfer", "model.name=airnet",
          f"prior.bank={BANKS / 'filternet-s2-cifar100-networks.safetensors'}"],
         "filter bank layer '0' has filters of shape (3, 7, 7), which do not fit"),
    ],
)
def test_study_checks_data_model_and_sizes_once_before_the_grid(tmp_path, capsys, flags, message):
    from filterprior.commands import main

    out = tmp_path / "s"
    code = main(["study", "--out", str(out), "--workers", "1", "--split-seeds", "0-4", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot start the study: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "cell(s) failed" not in err
    assert not out.exists()  # no cell ran, nothing written


class _Interrupted(Exception):
    """Stands for a study killed mid-cell (the checkpoint of its first epoch is on disk)."""


def _train_logging_resume(log, cfg, run_dir, resume=False, quiet=False, stop_after=None):
    """The real engine, logging how each cell started; with `stop_after` it stops after that many epochs."""
    from filterprior.train.engine import train

    with open(log, "a") as f:
        f.write(f"{'resume' if resume else 'fresh'}\n")

    def stop(epoch, _model):
        if stop_after is not None and epoch >= stop_after:
            raise _Interrupted(f"stopped after epoch {epoch}")

    return train(cfg, run_dir, resume=resume, quiet=quiet, on_epoch_end=stop)


@pytest.mark.slow
def test_an_interrupted_cell_resumes_from_its_checkpoint_to_the_uninterrupted_result(tmp_path):
    from functools import partial

    from filterprior.study import StudyFailed

    base = apply_overrides(TrainConfig(), ["data.dataset=mini", "epochs=3", "model.name=mynet-small", "device=cpu",
                                           "batch_size=16", "filter_pictures=false", "data.cutmix=1.0"])
    study = partial(run_study, base, sizes=[5], methods=["none"], split_seeds=[0], workers=1, progress=False)
    log = tmp_path / "calls.log"
    whole = read_results_csv(study(tmp_path / "whole"))[0]

    out = tmp_path / "interrupted"
    with pytest.raises(StudyFailed, match="stopped after epoch 2"):
        study(out, train_fn=partial(_train_logging_resume, log, stop_after=2))
    assert not (out / "none/n5/split0/metrics.json").exists()
    written = (out / "none/n5/split0/cell.json").stat().st_mtime_ns
    time.sleep(0.01)
    resumed = read_results_csv(study(out, train_fn=partial(_train_logging_resume, log)))[0]
    # cell.json is written anew on a resume too: the heartbeat counts a cell as started in this study by its time
    assert (out / "none/n5/split0/cell.json").stat().st_mtime_ns > written
    assert log.read_text().split() == ["fresh", "resume"]
    assert not (out / "none/n5/split0/error.txt").exists()  # the failure it recorded was retried
    assert resumed.test_acc == whole.test_acc and resumed.val_acc == whole.val_acc

    # interrupted after its last epoch's checkpoint, before the test: the resume only tests
    last = tmp_path / "last"
    with pytest.raises(StudyFailed, match="stopped after epoch 3"):
        study(last, train_fn=partial(_train_logging_resume, log, stop_after=3))
    tested = read_results_csv(study(last, train_fn=partial(_train_logging_resume, log)))[0]
    assert log.read_text().split() == ["fresh", "resume", "fresh", "resume"]
    assert tested.test_acc == whole.test_acc

    # a damaged checkpoint is never resumed: the cell is redone from an empty directory
    cell = out / "none/n5/split0"
    (cell / "metrics.json").unlink()
    (cell / "checkpoint.pt").write_bytes(b"damaged")
    redone = read_results_csv(study(out, train_fn=partial(_train_logging_resume, log)))[0]
    assert log.read_text().split() == ["fresh", "resume", "fresh", "resume", "fresh"]
    assert redone.test_acc == whole.test_acc


@pytest.mark.slow
def test_a_hide_test_study_reads_the_test_set_later_from_the_weights_as_training_would_have(tmp_path, capsys,
                                                                                            monkeypatch):
    """--hide-test trains without the test read; the same study without it tests the finished weights, retraining
    nothing, and gets exactly the figures a study that read test at the end of training got."""
    base = apply_overrides(TrainConfig(), ["data.dataset=mini", "epochs=2", "model.name=mynet-small", "device=cpu",
                                           "batch_size=16", "filter_pictures=false", "tta=flip-shift",
                                           "data.val_per_class=3"])
    study = dict(sizes=[5], methods=["none"], split_seeds=[0, 1], workers=1)
    plain = read_results_csv(run_study(base, tmp_path / "plain", **study))

    out = tmp_path / "hidden"
    hidden = read_results_csv(run_study(base, out, hide_test=True, **study))
    cell = out / "none/n5/split0"
    metrics = json.loads((cell / "metrics.json").read_text())
    assert [r.test_acc for r in hidden] == [None, None] and metrics["test_acc"] is None
    assert metrics["per_class_acc"] is None and not (cell / "confusion.csv").exists()  # test never evaluated
    assert [r.val_acc for r in hidden] == [r.val_acc for r in plain]
    trained = {p.name: p.stat().st_mtime_ns for p in cell.iterdir() if p.name not in ("metrics.json", "cell.json")}
    capsys.readouterr()

    monkeypatch.setattr(execution, "HEARTBEAT_S", 0.02)  # a heartbeat during the test read says what it does
    tested = read_results_csv(run_study(base, out, **study))
    shown = capsys.readouterr().out
    assert "2 cell(s) trained without their test read (--hide-test) are tested from their weights" in shown
    assert "training: none n=5 split=0 reading the test set from its weights" in shown
    assert [(r.test_acc, r.val_acc) for r in tested] == [(r.test_acc, r.val_acc) for r in plain]
    after = json.loads((cell / "metrics.json").read_text())
    before_plain = json.loads((tmp_path / "plain/none/n5/split0/metrics.json").read_text())
    for key in ("test_acc", "test_loss", "per_class_acc", "test_images"):
        assert after[key] == pytest.approx(before_plain[key]), key
    assert after["test_read_after_training"] is True and after["wall_time_s"] == metrics["wall_time_s"]
    assert (cell / "confusion.csv").read_text() == (tmp_path / "plain/none/n5/split0/confusion.csv").read_text()
    assert json.loads((cell / "weights.json").read_text())["test_acc"] == after["test_acc"]
    # nothing retrained: the weights, checkpoint and curves are the files training wrote
    untouched = {name: t for name, t in trained.items() if name != "weights.json"}
    assert "weights.safetensors" in untouched and "checkpoint.pt" in untouched
    assert {name: (cell / name).stat().st_mtime_ns for name in untouched} == untouched
    again = read_results_csv(run_study(base, out, **study))  # tested once: a third run changes nothing
    assert again == tested and json.loads((cell / "metrics.json").read_text()) == after
