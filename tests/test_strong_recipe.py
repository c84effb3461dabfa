"""The strong recipe end to end on the embedded mini set: policy + mixing + EMA resume exactly, the weight
average is what is tested and exported, and the augmentation preview (run directory and command)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from filterprior.commands import main
from filterprior.config import TrainConfig, apply_overrides
from filterprior.data.loader import AugmentConfig
from filterprior.data.mixing import MixConfig
from filterprior.data.augment_preview import _pick, describe
from filterprior.train import train
from filterprior.train.checkpoint import load_checkpoint

QUICK = ["data.dataset=mini", "model.name=mynet-small", "batch_size=16", "threads=1", "progress=false"]


def quick_config(*extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), QUICK + list(extra))


STRONG = ["epochs=4", "model.name=filternet-s2", "model.options.dropout=0.2", "data.cutout=8",
          "data.policy=randaugment", "data.mixup=0.4", "data.cutmix=1.0", "data.mix_prob=0.8", "ema=0.9",
          "filter_pictures=false"]


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_resume_with_randaugment_mixing_and_ema_ends_like_an_uninterrupted_run(tmp_path):
    """The sibling of the SIGKILL test for the strong recipe, in one process: stopped after epoch 2's
    checkpoint, resumed, it must end where the uninterrupted run ends (weights, EMA, test metrics)."""
    cfg = quick_config(*STRONG)
    full = train(cfg, tmp_path / "full", quiet=True)

    def stop_after_two(epoch, model):
        if epoch == 2:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        train(cfg, tmp_path / "cut", quiet=True, on_epoch_end=stop_after_two)
    torch.manual_seed(12345)  # whatever the global generator holds, the resumed epochs are reseeded
    resumed = train(cfg, tmp_path / "cut", resume=True, quiet=True)
    assert resumed["test_acc"] == full["test_acc"]
    assert resumed["test_loss"] == pytest.approx(full["test_loss"], rel=1e-6)
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    for part in ("model", "ema"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=1e-5, atol=1e-6)
    assert [row["train_loss"] for row in a["history"]] == pytest.approx([row["train_loss"] for row in b["history"]])


def test_the_weight_average_is_what_is_tested_and_exported(tmp_path, capsys):
    metrics = train(quick_config("epochs=3", "ema=0.9"), tmp_path / "run", quiet=True)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    exported = load_file(str(tmp_path / "run" / "weights.safetensors"))
    assert state["ema"]["n_averaged"].item() == state["step"]
    for key, value in exported.items():
        assert torch.equal(value, state["ema"][f"module.{key}"]), key
    assert any(not torch.equal(exported[k], state["model"][k]) for k in exported if k.endswith("weight"))
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_acc"] == pytest.approx(metrics["test_acc"])


def test_augment_preview_is_written_when_augmentation_is_on(tmp_path):
    train(quick_config("epochs=1", "data.policy=autoaugment", "data.cutmix=1.0"), tmp_path / "on", quiet=True)
    assert (tmp_path / "on" / "augment_preview.png").stat().st_size > 1000
    train(quick_config("epochs=1", "data.crop_padding=0", "data.flip=false"), tmp_path / "off", quiet=True)
    assert not (tmp_path / "off" / "augment_preview.png").exists()


def test_augment_preview_command_writes_the_picture_and_rejects_bad_keys(tmp_path, capsys):
    out = tmp_path / "preview.png"
    assert main(["augment-preview", "--data", "mini", "data.policy=trivialaugment", "data.mixup=0.2", "--rows", "4",
                 "--epochs-shown", "3", "-o", str(out)]) == 0
    with Image.open(out) as picture:
        small = picture.size
    assert main(["augment-preview", "--data", "mini", "-o", str(out)]) == 0
    with Image.open(out) as picture:
        assert picture.size[0] > small[0] and picture.size[1] > small[1]  # 8 rows, 1 + 7 columns
    capsys.readouterr()
    assert main(["augment-preview", "--data", "mini", "data.policy=autoaug", "-o", str(out)]) == 2
    assert "data.policy must be one of" in capsys.readouterr().err


def test_preview_rows_show_one_class_each_and_the_title_names_the_recipe():
    labels = torch.arange(40) % 10
    chosen = _pick(labels.numpy(), 8, seed=0)
    assert len(set(labels[chosen].tolist())) == 8
    text = describe(AugmentConfig(crop_padding=4, flip=True, policy="randaugment", randaugment_m=14, cutout=8),
                    MixConfig(mixup=0.2, cutmix=1.0, prob=0.5))
    assert text == "crop 4 px, flip, randaugment n=2 m=14, cutout 8, mixup alpha 0.2 or cutmix alpha 1 (p 0.5)"
