"""`filterprior eval` gives back a run's own test accuracy, with and without test-time augmentation (flip,
flip-shift, flip-shift-diagonal)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from filterprior.commands import main
from filterprior.train import train
from filterprior.data import TensorLoader
from filterprior.train.evaluate import evaluate, predict, shifted
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


def test_a_shifted_view_moves_the_pixels_and_fills_the_border():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    down = shifted(image, 1, 0, fill=-1.0)
    assert torch.equal(down[0, 0, 0], torch.full((4,), -1.0)) and torch.equal(down[0, 0, 1:], image[0, 0, :3])
    left = shifted(image, 0, -2, fill=torch.tensor(-7.0).view(1, 1, 1, 1))
    assert torch.equal(left[0, 0, :, :2], image[0, 0, :, 2:]) and bool((left[0, 0, :, 2:] == -7).all())
    assert shifted(image, 0, 0) is image
    with pytest.raises(ValueError, match="leaves nothing"):
        shifted(image, 4, 0)


AXIS_MOVES = [(1, 0), (-1, 0), (0, 1), (0, -1)]
DIAGONAL_MOVES = [(1, 1), (1, -1), (-1, 1), (-1, -1)]


@pytest.mark.parametrize("tta, moves", [("flip-shift", AXIS_MOVES), ("flip-shift-diagonal", AXIS_MOVES + DIAGONAL_MOVES)])
def test_shift_tta_averages_its_views_filled_with_the_given_black(tta, moves):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 5))
    images, black, s = torch.randn(4, 3, 6, 6), torch.tensor([-1.0, -2.0, -3.0]).view(1, 3, 1, 1), 2

    def crop(x, dy, dx):  # an independent construction: pad with black, cut the window back out
        padded = F.pad(x - black, (s, s, s, s)) + black
        return padded[:, :, s - dy:s - dy + 6, s - dx:s - dx + 6]

    views = [v for x in (images, images.flip(3))
             for v in [x] + [crop(x, s * dy, s * dx) for dy, dx in moves]]
    assert len(views) == {"flip-shift": 10, "flip-shift-diagonal": 18}[tta]
    expected = sum(model(v) for v in views) / len(views)
    assert torch.allclose(predict(model, images, tta, black, shift=s), expected, atol=1e-6)
    assert not torch.allclose(predict(model, images, "flip"), expected, atol=1e-3)
    with pytest.raises(ValueError, match="flip-shift"):
        predict(model, images, "crops")


def test_the_loaders_black_pixel_is_what_it_makes_of_a_zero_pixel():
    zeros = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    loader = TensorLoader(zeros, torch.zeros(2), 2, shuffle=False, augment=None,
                          mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    images, _ = next(iter(loader))
    assert torch.allclose(images, loader.black.expand_as(images))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    # an all-black image shifted with the loader's fill stays all black, so every view agrees with the plain one
    assert torch.allclose(predict(model, images, "flip-shift", loader.black, shift=1), model(images), atol=1e-6)
    assert evaluate(model, loader, 2, "flip-shift").acc == evaluate(model, loader, 2, "none").acc


def test_eval_with_flip_shift_tta_names_it(tmp_path, capsys):
    train(quick_config("epochs=1", "tta=flip-shift"), tmp_path / "run", quiet=True)
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert "flip-shift test-time augmentation" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run"), "--tta", "flip-shift-diagonal"]) == 0
    assert "flip-shift-diagonal test-time augmentation" in capsys.readouterr().out


def test_on_the_cpu_predict_feeds_channels_last_batches_and_gives_the_same_logits():
    torch.manual_seed(0)
    seen = []
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    conv.register_forward_pre_hook(lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)).eval()
    images = torch.randn(5, 3, 6, 6)
    with torch.no_grad():
        plain = torch.nn.Sequential(*model)(images)  # called directly: the contiguous batch as given
        assert torch.allclose(predict(model, images, "none"), plain, atol=1e-5)
    assert seen == [False, True]  # the direct call saw a contiguous batch, predict a channels-last one


def test_on_the_cpu_predict_cuts_big_batches_into_pieces_in_order():
    from filterprior.train.evaluate import CPU_CHUNK

    torch.manual_seed(0)
    sizes = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).eval()
    model.register_forward_pre_hook(lambda _, args: sizes.append(len(args[0])))
    images = torch.randn(2 * CPU_CHUNK + 7, 3, 4, 4)
    with torch.no_grad():
        whole = model(images)
        sizes.clear()
        got = predict(model, images, "flip")
    assert sizes == [CPU_CHUNK] * 4 + [7, 7]  # each piece seen plain and mirrored
    expected = (whole + model(images.flip(3))) / 2
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-6)  # in the images' order
