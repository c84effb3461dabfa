"""Exported weights back as a model, and testing a run directory or exported weights on a dataset's
full test set (what `filterprior eval` prints)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from torch import nn

from filterprior.config import TTA_MODES
from filterprior.data.limits import check_image_size
from filterprior.data.provenance import check_recorded_data
from filterprior.errors import UserError
from filterprior.train.checkpoint import read_exported
from filterprior.train.evaluate import evaluate
from filterprior.utils import read_yaml, resolve_device


def _run_config(path: Path) -> dict[str, Any]:
    """A run's config.yaml as a dict ({} when there is none)."""
    if not path.is_file():
        return {}
    run_cfg = read_yaml(path, "run config") or {}
    return run_cfg if isinstance(run_cfg, dict) else {}


def weights_metadata_path(path: Path) -> Path:
    """The weights.json that holds a run directory's or a .safetensors file's metadata."""
    return (path / "weights.json") if path.is_dir() else path.with_suffix(".json")


def run_tta(path: Path, tta: str | None) -> str:
    """The test-time augmentation to use: `tta` when given, else the run's own (config.yaml), else none."""
    run_cfg = _run_config(path / "config.yaml") if path.is_dir() else {}
    tta = tta or run_cfg.get("tta") or "none"
    if tta not in TTA_MODES:
        raise UserError(f"{path / 'config.yaml'}: tta {tta!r} is not known; expected one of {', '.join(TTA_MODES)}")
    return tta


def load_exported_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The model that a run directory or exported .safetensors file holds (on the CPU), with its metadata."""
    from filterprior.models import create_model

    tensors, meta = read_exported(path)
    model = create_model(meta["model"], num_classes=meta["num_classes"], **meta.get("options", {}))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise UserError(f"weights in {path} do not fit model {meta['model']}: {exc}") from exc
    return model, meta


def evaluate_path(path: str | Path, dataset: str | None = None, root: str | None = None,
                  device: str = "auto", tta: str | None = None) -> dict[str, Any]:
    """Test accuracy of a run directory or exported weights; `tta` None: the run's own (none for bare
    weights), so a run directory gives back the number the run reported."""
    from filterprior.data import TensorLoader, load_data

    path = Path(path)
    model, meta = load_exported_model(path)
    image_size = check_image_size(meta.get("image_size", 32), f"{weights_metadata_path(path)}: image_size")
    run_cfg = _run_config(path / "config.yaml") if path.is_dir() else {}
    data_cfg = run_cfg.get("data") if isinstance(run_cfg.get("data"), dict) else {}
    tta = run_tta(path, tta)
    dataset = dataset or data_cfg.get("dataset") or meta.get("dataset")
    if not dataset:
        raise UserError(f"{path}: no dataset recorded; pass --data")
    root = root or data_cfg.get("root")
    dev = resolve_device(device)
    test_fraction = data_cfg.get("test_fraction", meta.get("test_fraction", 0.2))
    data = load_data(dataset, root=root, image_size=image_size, test_fraction=float(test_fraction))
    warning = check_recorded_data(meta, data, str(path))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if len(data.classes) != meta["num_classes"]:
        raise UserError(
            f"{path} was trained for {meta['num_classes']} classes but {dataset} has {len(data.classes)}"
        )
    model.to(dev)
    loader = TensorLoader(data.test_images, data.test_labels, 500, shuffle=False, augment=None,
                          mean=tuple(meta["mean"]), std=tuple(meta["std"]), device=dev)
    result = evaluate(model, loader, len(data.classes), tta)
    return {
        "dataset": dataset, "tta": tta, "test_acc": result.acc, "test_loss": result.loss,
        "test_images": int(len(data.test_labels)),
        "per_class_acc": dict(zip(data.classes, result.per_class_acc)),
    }
