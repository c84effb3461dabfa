"""The one test read of a run: at the end of training (the engine), or later, for a run trained with
`test: false` (what `study --hide-test` sets), from its exported weights. Tuning then never computes a
test figure, and the test read of a chosen candidate retrains nothing: it gives the number the engine
would have given at the end of that run (the same weights, test loader and test-time augmentation).
(Named testset.py, not test_*.py: pytest pointed at src/ would collect a test_*.py module.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from filterprior.config import TrainConfig
from filterprior.errors import UserError
from filterprior.results import METRICS_FILE
from filterprior.train.evaluate import EvalResult
from filterprior.utils import atomic_write_text, read_json


def write_test_outputs(test: EvalResult, classes: list[str], run_dir: Path) -> None:
    """The test set's confusion matrix as CSV and as a picture."""
    from filterprior.figures.plots import plot_confusion, write_confusion_csv

    write_confusion_csv(test.confusion, classes, run_dir / "confusion.csv")
    plot_confusion(test.confusion, classes, run_dir / "confusion.png", title=f"test accuracy {100 * test.acc:.2f}%")


def testset_fields(test: EvalResult, classes: list[str], test_images: int) -> dict[str, Any]:
    """What metrics.json holds about the test set."""
    return {"test_acc": test.acc, "test_loss": test.loss, "per_class_acc": dict(zip(classes, test.per_class_acc)),
            "test_images": test_images}


def awaits_test_read(run_dir: Path) -> bool:
    """Whether a finished run has no test figure yet (trained with `test: false`). An unreadable
    metrics.json counts as read: whoever reads the results reports that file."""
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and "test_acc" in metrics and metrics["test_acc"] is None


def read_test_later(cfg: TrainConfig, run_dir: str | Path) -> dict[str, Any]:
    """Test a finished run trained with `test: false` on the full test set, once: its exported weights,
    the test loader the engine builds from `cfg` (the run's own config) and `cfg.tta`. Fills the test
    fields of metrics.json (written last, atomically), the confusion files and weights.json's test_acc.
    Refuses when the data changed since the run trained (its source hash), naming both."""
    from filterprior.data.pipeline import prepare_data, with_absolute_data_paths
    from filterprior.train.evaluate import evaluate
    from filterprior.train.exported import load_exported_model, weights_metadata_path
    from filterprior.utils import resolve_device

    run_dir = Path(run_dir)
    metrics_file = run_dir / METRICS_FILE
    metrics = read_json(metrics_file, "run metrics")
    if metrics.get("test_acc") is not None:
        raise UserError(f"{metrics_file} already holds a test accuracy; a run is tested once")
    cfg = with_absolute_data_paths(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    prep = prepare_data(cfg, device)
    recorded = metrics.get("source_hash")
    if recorded and recorded != prep.data.source_hash:
        raise UserError(f"{run_dir} was trained on data with source hash {recorded}, but {cfg.data.dataset} now "
                        f"has {prep.data.source_hash}: its test read would be on other data; retrain it")
    model, meta = load_exported_model(run_dir)
    weights_meta = weights_metadata_path(run_dir)
    if list(meta.get("classes") or []) != prep.classes:
        raise UserError(f"{weights_meta} lists other classes than {cfg.data.dataset} has now; "
                        "retrain the run")
    test = evaluate(model.to(device), prep.test_loader, len(prep.classes), cfg.tta)
    write_test_outputs(test, prep.classes, run_dir)
    atomic_write_text(weights_meta, json.dumps({**read_json(weights_meta, "weights metadata"),
                                                "test_acc": test.acc}, indent=2))
    metrics.update(testset_fields(test, prep.classes, int(len(prep.test_loader.labels))))
    metrics["test_read_after_training"] = True  # from weights.safetensors, not in the training process
    atomic_write_text(metrics_file, json.dumps(metrics, indent=2))
    return metrics
