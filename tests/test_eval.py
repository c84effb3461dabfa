"""`filterprior eval` gives back a run's own test accuracy, with and without flip test-time augmentation."""

from __future__ import annotations

import json

import pytest
import torch

from filterprior.commands import main
from filterprior.train import train
from filterprior.train.evaluate import predict
from quick_run import quick_config


def test_eval_reproduces_the_final_test_accuracy(tmp_path, capsys):
    metrics = train(quick_config("epochs=2"), tmp_path / "run", quiet=True)
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_acc"] == pytest.approx(metrics["test_acc"])
    assert main(["eval", str(tmp_path / "run" / "weights.safetensors"), "--json", "--data", "mini"]) == 0


def test_flip_tta_averages_the_logits_of_an_image_and_its_mirror():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))  # not mirror-symmetric
    images = torch.randn(6, 3, 4, 4)
    expected = (model(images) + model(images.flip(3))) / 2
    assert torch.allclose(predict(model, images, "flip"), expected)
    assert not torch.allclose(predict(model, images, "none"), expected)


def test_a_run_with_flip_tta_reports_it_and_eval_reproduces_it(tmp_path, capsys):
    metrics = train(quick_config("epochs=2", "tta=flip"), tmp_path / "run", quiet=True)
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tta"] == "flip" and result["test_acc"] == pytest.approx(metrics["test_acc"])
    assert main(["eval", str(tmp_path / "run"), "--json", "--tta", "none"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] == "none"
