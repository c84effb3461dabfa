"""A study with the real training engine: an end-to-end grid on the mini set, and the checks of data, model,
sizes and bank that stop a study before its first cell."""

from __future__ import annotations

import json

import pytest

from filterprior.banks.bank import BANKS_DIR as BANKS
from filterprior.config import TrainConfig, apply_overrides
from filterprior.study import read_results_csv, run_study


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
