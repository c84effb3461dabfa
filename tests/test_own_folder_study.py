"""A study on one's own image folder with the bundled bank, end to end as a user would run it, and folders
a classifier cannot use stopping it before any cell."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from filterprior.commands import main
from filterprior.banks.bank import default_bank_path


def make_folder(root, classes=("cats", "dogs", "owls"), per_class=12):
    """Images of assorted sizes and modes (RGB, greyscale, RGBA), no test/ folder: a held-out fraction is used."""
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (64, 64), (17, 23), (32, 32)]
    for c, name in enumerate(classes):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            pixels = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
            pixels[..., c] += 150  # a colour per class, so there is something to learn
            image = Image.fromarray(pixels)
            image = image.convert(["RGB", "L", "RGBA"][i % 3])
            image.save(folder / f"{i:03d}.png")
    (root / "train" / ".hidden").mkdir()  # hidden folders are not classes
    return root


@pytest.mark.slow
def test_study_on_own_folder_with_the_bundled_bank(tmp_path, capsys):
    data = make_folder(tmp_path / "pets")
    out = tmp_path / "study"
    code = main(["study", "--data", str(data), "--sizes", "4", "--methods", "none,gaussian,transfer", "--split-seeds", "0,1",
                 "--epochs", "3", "--workers", "1", "--out", str(out), "threads=1"])
    assert code == 0, capsys.readouterr().err
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["method"], r["split_seed"]) for r in rows) == [
        ("gaussian", "0"), ("gaussian", "1"), ("none", "0"), ("none", "1"), ("transfer", "0"), ("transfer", "1")]
    for row in rows:
        metrics = json.loads((out / row["run_dir"] / "metrics.json").read_text())
        assert metrics["classes"] == ["cats", "dogs", "owls"]
        assert metrics["train_images"] == 12 and metrics["test_images"] == 6  # round(0.2 x 12) a class held out
    gaussian_csv = (out / "gaussian" / "n4" / "split0" / "metrics.csv").read_text()
    assert "prior/gaussian/0" in gaussian_csv.splitlines()[0]
    assert "| gaussian |" in (out / "summary.md").read_text()
    # transfer: a whole bundled source network, frozen, under a new 3-class head
    from safetensors.torch import load_file

    from filterprior.banks.bank import load_bank

    bank = load_bank(default_bank_path("filternet-s2", networks=True))
    trained = load_file(str(out / "transfer" / "n4" / "split0" / "weights.safetensors"))
    (head,) = [v for v in trained.values() if v.dim() == 2]
    assert head.shape[0] == 3
    blocks = bank.filters("6").split(128)
    assert any(torch.equal(trained["6.weight"], block) for block in blocks)
    assert (out / "bank.png").is_file()  # the report shows the bank beside the runs' filters
    assert main(["report", str(out), "-o", str(tmp_path / "report.html")]) == 0
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_folders_a_classifier_cannot_use_stop_the_study_before_any_cell(tmp_path, capsys):
    one = make_folder(tmp_path / "one", classes=("cats",), per_class=6)
    tiny = make_folder(tmp_path / "tiny", classes=("cats", "dogs"), per_class=1)
    for folder, message in ((one, "has only 1 class (cats); a classifier needs at least 2"),
                            (tiny, "the test split is empty (images per class, train+test: cats 1+0, dogs 1+0)")):
        out = tmp_path / f"study-{folder.name}"
        code = main(["study", "--data", str(folder), "--sizes", "1", "--methods", "none", "--split-seeds", "0",
                     "--epochs", "1", "--workers", "1", "--out", str(out), "threads=1"])
        err = capsys.readouterr().err
        assert code == 2 and str(folder) in err and message in err, err
        assert "data.test_fraction=0.2" in err or folder is one
        assert not out.exists()  # nothing written: not even the study directory
