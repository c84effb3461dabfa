"""`filterprior predict`: a trained mini run classifies its own test images, written out as PNG files,
exactly as its final evaluation did (same resize, normalisation and flip TTA)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from filterprior.commands import main
from filterprior.config import TrainConfig, apply_overrides
from filterprior.data import load_data
from filterprior.errors import UserError
from filterprior.train import train
from filterprior.train.predict import predict_images

# image_size 16: the 32 x 32 PNGs are resized on reading, as eval resizes the mini set.
RUN = ["data.dataset=mini", "model.name=filternet-s2", "batch_size=16", "threads=1", "progress=false",
       "epochs=2", "tta=flip", "data.image_size=16", "filter_pictures=false"]


@pytest.fixture(scope="module")
def run_and_images(tmp_path_factory):
    """A finished run (flip TTA, 16 px) and the mini test set as PNG files in nested folders."""
    root = tmp_path_factory.mktemp("predict")
    run = root / "run"
    metrics = train(apply_overrides(TrainConfig(), RUN), run, quiet=True)
    data = load_data("mini")  # the 32 x 32 originals
    images = root / "images"
    labels = {}
    for i, (pixels, label) in enumerate(zip(data.test_images, data.test_labels)):
        path = images / f"batch{i % 3}" / "deeper" / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        labels[str(path)] = data.classes[int(label)]
    return run, images, labels, metrics


def _confusion_csv(path) -> dict[str, dict[str, int]]:
    rows = list(csv.reader(path.read_text().splitlines()))
    return {row[0]: dict(zip(rows[0][1:], map(int, row[1:]))) for row in rows[1:]}


def test_predictions_are_the_argmax_the_runs_own_evaluation_computed(run_and_images, capsys):
    run, images, labels, metrics = run_and_images
    assert main(["predict", str(run), str(images)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    classes = json.loads((run / "weights.json").read_text())["classes"]
    assert len(rows) == len(labels) == 1000
    assert list(rows[0]) == ["path", "predicted", "confidence", *(f"p_{c}" for c in classes)]
    # The run's test confusion matrix, rebuilt from the predictions and the true classes of the files.
    confusion = {c: dict.fromkeys(classes, 0) for c in classes}
    for row in rows:
        confusion[labels[row["path"]]][row["predicted"]] += 1
        probs = np.array([float(row[f"p_{c}"]) for c in classes])  # rounded to 6 decimals: ties possible
        assert float(row["confidence"]) == float(row[f"p_{row['predicted']}"]) == probs.max()
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert confusion == _confusion_csv(run / "confusion.csv")
    correct = sum(confusion[c][c] for c in classes)
    assert correct / len(rows) == pytest.approx(metrics["test_acc"])


def test_flip_tta_is_taken_from_the_run_and_can_be_turned_off(run_and_images):
    run, images, _, _ = run_and_images
    some = sorted(images.rglob("*.png"))[:40]
    own = predict_images(run, some)
    off = predict_images(run, some, tta="none")
    bare = predict_images(run / "weights.safetensors", some)  # bare weights: no run config, no TTA
    assert own.tta == "flip" and off.tta == "none" and bare.tta == "none"
    assert not np.allclose(own.probs, off.probs)
    np.testing.assert_array_equal(bare.probs, off.probs)


def test_top_k_and_an_output_file(run_and_images, tmp_path, capsys):
    run, images, _, _ = run_and_images
    one = sorted(images.rglob("*.png"))[0]
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir()
    assert main(["predict", str(run), str(one), "--top-k", "3", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "predicted", "confidence", "top1", "p_top1", "top2", "p_top2", "top3", "p_top3"]
    full = predict_images(run, [one])
    order = np.argsort(-full.probs[0], kind="stable")
    assert [rows[0][f"top{k}"] for k in (1, 2, 3)] == [full.classes[i] for i in order[:3]]
    assert rows[0]["predicted"] == rows[0]["top1"]
    assert float(rows[0]["p_top1"]) >= float(rows[0]["p_top2"]) >= float(rows[0]["p_top3"])
    assert [p.name for p in out.parent.iterdir()] == ["pred.csv"]  # no temporary file left beside it
    assert main(["predict", str(run), str(one), "--top-k", "11"]) == 2
    assert "--top-k 11" in capsys.readouterr().err


def test_bad_input_is_one_line_naming_what_is_wrong(run_and_images, tmp_path, capsys):
    run, images, _, _ = run_and_images
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(UserError, match="broken.png is not a readable image"):
        predict_images(run, [images, broken])
    missing_run = tmp_path / "no-such-run"
    with pytest.raises(UserError, match="no-such-run does not exist"):
        predict_images(missing_run, [images])
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("not an image")
    (empty / ".hidden.png").write_bytes(b"")
    with pytest.raises(UserError, match="no images found in .*empty"):
        predict_images(run, [empty])
    with pytest.raises(UserError, match="nowhere.png does not exist"):
        predict_images(run, [tmp_path / "nowhere.png"])
    assert main(["predict", str(run), str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.png" in err and "Traceback" not in err
    # A run directory without weights (killed before the end) is named too.
    (tmp_path / "unfinished").mkdir()
    assert main(["predict", str(tmp_path / "unfinished"), str(images)]) == 2
    assert "unfinished" in capsys.readouterr().err


def test_a_grey_image_of_another_size_is_classified_as_its_rgb_copy(run_and_images, tmp_path):
    """Greyscale is converted to RGB and any size resized, as the data readers do."""
    run, _, _, _ = run_and_images
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (50, 70), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([grey] * 3, axis=2)).save(tmp_path / "rgb.png")
    pred = predict_images(run, [tmp_path])
    assert [p.rsplit("/", 1)[1] for p in pred.paths] == ["grey.png", "rgb.png"]
    np.testing.assert_array_equal(pred.probs[0], pred.probs[1])
