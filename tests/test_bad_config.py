"""Bad input through the real CLI: one `error: ...` line naming the key, file or value, exit code 2,
no traceback, and no run directory left behind when the config is rejected."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from filterprior.commands import build_parser, main
from filterprior.config import TrainConfig, apply_overrides, validate_config
from filterprior.data.pipeline import with_absolute_data_paths
from filterprior.errors import UserError
from filterprior.utils import atomic_path, atomic_write_text

QUICK = ["--quiet", "--data", "mini", "--model", "mynet-small", "--epochs", "1", "--threads", "1",
         "batch_size=16", "filter_pictures=false"]


def fails(capsys, *argv: str) -> str:
    """Run the CLI; it must exit 2 with exactly one `error:` line and no traceback."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *QUICK, "--out", str(run)]) == 0
    return run


# ------------------------------------------------------------------ items 1-4, 11, 12: values


@pytest.mark.parametrize("argv, says", [
    (["epochs=-1"], "epochs must be 1 or more, got -1"),
    (["--epochs", "0"], "epochs must be 1 or more, got 0"),
    (["threads=-1"], "threads must be 0 or more"),
    (["batch_size=0"], "batch_size must be 1 or more, got 0"),
    (["optim.lr=-1"], "optim.lr must be a finite number above 0, got -1.0"),
    (["optim.lr=nan"], "optim.lr must be a finite number above 0, got nan"),
    (["optim.momentum=-1"], "optim.momentum must be in [0, 1)"),
    (["optim.name=adam", "optim.betas=[2,2]"], "optim.betas must be two numbers, each in [0, 1), got [2.0, 2.0]"),
    (["optim.weight_decay=-0.1"], "optim.weight_decay must be a finite number, 0 or more"),
    (["optim.label_smoothing=1"], "optim.label_smoothing must be in [0, 1)"),
    (["data.images_per_class=0"], "data.images_per_class must be 1 or more"),
    (["tta=mirror"], "tta must be one of none, flip, flip-shift, flip-shift-diagonal, got 'mirror'"),
    (["data.mean=[1,2]"], "data.mean is set without data.std"),
    (["data.std=[0.2,0.2,0.2]"], "data.std is set without data.mean"),
    (["data.mean=[0.5,0.5]", "data.std=[0.2,0.2]"], "3 numbers each"),
    (["data.mean=[0.5,0.5,0.5]", "data.std=[0.2,0,0.2]"], "data.std must hold finite numbers above 0"),
    (["data.policy=autoaugmnt"], "data.policy must be one of none, autoaugment, randaugment, trivialaugment"),
    (["data.randaugment_m=31"], "data.randaugment_m must be in 0..30, got 31"),
    (["data.randaugment_n=0"], "data.randaugment_n must be 1 or more"),
    (["data.mixup=-0.2"], "data.mixup must be a finite number, 0 or more"),
    (["data.cutmix=inf"], "data.cutmix must be a finite number, 0 or more"),
    (["data.mix_prob=1.5"], "data.mix_prob must be in [0, 1]"),
    (["ema=1"], "ema must be in [0, 1)"),
])
def test_out_of_range_value_is_named_and_nothing_is_written(tmp_path, capsys, argv, says):
    run = tmp_path / "run"
    err = fails(capsys, "train", *QUICK, *argv, "--out", str(run))
    assert says in err
    assert not run.exists()


def test_threads_zero_means_torch_default():
    validate_config(apply_overrides(TrainConfig(), ["threads=0"]))  # documented, so accepted


@pytest.mark.parametrize("argv, says", [
    (["model.name=nope"], "unknown model 'nope'"),
    (["--data", "no/such/folder"], "no/such/folder"),
    (["prior.name=l2-sp", "prior.layers=[all,nope]"], "prior.layers: 'all' is not a conv layer"),
    (["data.image_size=16"], "model mynet-small does not take 16x16 images (data.image_size=16)"),
])
def test_failures_found_while_building_leave_no_run_directory(tmp_path, capsys, argv, says):
    run = tmp_path / "run"
    assert says in fails(capsys, "train", *QUICK, *argv, "--out", str(run))
    assert not run.exists()


# ------------------------------------------------------------------------------ item 5: devices


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "mps"])
def test_unavailable_device_is_a_user_error(tmp_path, capsys, monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    err = fails(capsys, "train", *QUICK, f"device={device}", "--out", str(tmp_path / "run"))
    assert f"device {device!r} is not available" in err and "auto" in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------- item 6: config files


def test_config_file_that_is_not_utf8_is_named(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("epochs: 1  # caf\xe9\n".encode("latin-1"))
    err = fails(capsys, "train", "--config", str(path), "--out", str(tmp_path / "run"))
    assert str(path) in err and "UTF-8" in err


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("optim:\n  lr: 0.1\n   momentum: 0.9\n")
    err = fails(capsys, "train", "--config", str(path), "--out", str(tmp_path / "run"))
    assert str(path) in err and "line 3" in err and "<unicode string>" not in err


# ------------------------------------------------------------------------- item 7: output paths


def test_train_out_that_is_a_file_is_refused(tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    err = fails(capsys, "train", *QUICK, "--out", str(taken))
    assert str(taken) in err and "existing file" in err
    assert taken.read_text() == "mine"


def test_atomic_write_onto_a_directory_names_it(tmp_path):
    with pytest.raises(UserError, match=f"{tmp_path} is a directory"):
        atomic_write_text(tmp_path, "text")


def test_atomic_create_leaves_an_existing_file_alone(tmp_path):
    # replace=False: a new file appears whole, with the permissions of any atomic write; an existing one
    # is never overwritten (FileExistsError) and no temporary file is left either way.
    made = tmp_path / "made.txt"
    with atomic_path(made, replace=False) as tmp:
        tmp.write_text("first")
    atomic_write_text(tmp_path / "replaced.txt", "x")
    assert made.read_text() == "first"
    assert made.stat().st_mode == (tmp_path / "replaced.txt").stat().st_mode
    with pytest.raises(FileExistsError), atomic_path(made, replace=False) as tmp:
        tmp.write_text("second")
    assert made.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made.txt", "replaced.txt"]


def test_report_output_that_is_a_directory(finished_run, tmp_path, capsys):
    err = fails(capsys, "report", str(finished_run), "-o", str(tmp_path))
    assert f"{tmp_path} is a directory" in err


# ------------------------------------------------------------------ item 8, 10: resume problems


@pytest.mark.parametrize("content, reason", [(b"hello, these are not pickled tensors", "KeyError"),
                                             (b"", "EOFError")])
def test_damaged_checkpoint_names_the_reason_and_keeps_the_run(finished_run, tmp_path, capsys, content, reason):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "checkpoint.pt").write_bytes(content)
    err = fails(capsys, "train", "--out", str(run), "--resume", "--quiet")
    assert "could not be read" in err and reason in err and str(run / "checkpoint.pt") in err
    assert (run / "checkpoint.pt").read_bytes() == content and (run / "metrics.json").is_file()


def test_resume_without_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = fails(capsys, "train", *QUICK, "--resume")
    assert "--resume needs --out DIR" in err
    assert list(tmp_path.iterdir()) == []  # no fresh default run directory


# ------------------------------------------------------------------------ item 9: summary options


def test_summary_option_with_broken_yaml(capsys):
    err = fails(capsys, "summary", "filternet-s2", "widths=[1,")
    assert "widths='[1,'" in err and "YAML" in err


# ------------------------------------------------------------- item 13: relative dataset paths


def _image_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 2)):
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_relative_dataset_path_is_saved_absolute(tmp_path, capsys, monkeypatch):
    _image_folder(tmp_path / "work" / "pets")
    monkeypatch.chdir(tmp_path / "work")
    args = ["train", "--quiet", "--data", "pets", "--model", "mynet-small", "--epochs", "1", "--threads", "1",
            "batch_size=4", "data.val_per_class=0", "filter_pictures=false", "--out", "run"]
    assert main(args) == 0
    saved = (tmp_path / "work" / "run" / "config.yaml").read_text()
    assert f"dataset: {tmp_path / 'work' / 'pets'}" in saved
    monkeypatch.chdir(tmp_path)  # elsewhere: the run still finds its data
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "work" / "run"), "--json"]) == 0
    assert '"test_images": 4' in capsys.readouterr().out


def test_dataset_names_stay_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mini").mkdir()
    cfg = with_absolute_data_paths(apply_overrides(TrainConfig(), ["data.dataset=mini"]))
    assert cfg.data.dataset == "mini"


# ------------------------------------------------------------- item 14: overrides among options


def test_overrides_may_sit_between_options(capsys):
    args = build_parser().parse_args(["train", "epochs=1", "--data", "mini", "seed=3", "--quiet"])
    assert args.overrides == ["epochs=1", "seed=3"] and args.dataset == "mini" and args.quiet
    assert "unknown config key 'foo'" in fails(capsys, "train", "epochs=1", "--data", "mini", "foo=2")


# ------------------------------------------------------------------------- item 15: eval paths


def test_eval_of_a_file_that_is_not_weights(finished_run, capsys):
    err = fails(capsys, "eval", str(finished_run / "config.yaml"))
    assert str(finished_run / "config.yaml") in err and "run directory or a .safetensors file" in err


def test_eval_of_a_run_with_a_broken_config_names_it(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "config.yaml").write_text("data: [unclosed\n")
    err = fails(capsys, "eval", str(run))
    assert f"run config {run / 'config.yaml'} is not valid YAML" in err


def test_unknown_config_key_lists_valid_keys(capsys):
    assert main(["train", "--data", "mini", "optim.learning_rate=0.1"]) == 2
    err = capsys.readouterr().err
    assert "optim.learning_rate" in err and "optim.lr" in err


def test_wrong_value_type_names_the_key():
    with pytest.raises(UserError, match="'epochs'"):
        apply_overrides(TrainConfig(), ["epochs=many"])


def test_yaml_config_with_unknown_key_names_the_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 0.1\n  momentun: 0.9\n")
    code = main(["train", "--config", str(path), "--data", "mini", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1  # one line, the file first
    assert "unknown config key 'optim.momentun'" in err and "optim.momentum" in err
    assert not (tmp_path / "run").exists()
