"""Classifying new, unlabelled images with a trained run directory or exported weights (`filterprior
predict`).

Images go through the same steps as a run's test set in `eval`: decoded like the data readers do
(data/decode.py: EXIF orientation, 16-bit range, RGB, bilinear resize to weights.json's image_size), then
normalised with weights.json's mean and std by the same TensorLoader, and classified with the run's flip
test-time augmentation when it had it (train/evaluate.py `predict`).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from filterprior.data.decode import decode_images
from filterprior.data.folders import IMAGE_SUFFIXES
from filterprior.data.limits import MAX_IMAGE_FILE_BYTES, check_image_size, describe_bytes
from filterprior.errors import UserError
from filterprior.train.evaluate import predict as predict_logits
from filterprior.train.exported import load_exported_model, run_tta, weights_metadata_path
from filterprior.utils import resolve_device

BATCH = 256  # images decoded and classified at a time: memory stays bounded for any number of files


@dataclass
class Predictions:
    """Class probabilities (N x classes, softmax of the logits eval's argmax is taken over) per image."""

    paths: list[str]
    classes: list[str]
    probs: np.ndarray
    tta: str

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files among `paths`: a file is taken as it is (its decoding says whether it is an image); a
    folder is searched recursively for files with an image suffix (as the data readers read them: names
    starting with '.' skipped), in sorted order."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found.extend(Path(dirpath) / f for f in sorted(filenames)
                             if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise UserError(f"{path} does not exist; expected an image file or a folder of images")
    if not found:
        raise UserError(f"no images found in {', '.join(str(p) for p in paths) or 'the given paths'} "
                        f"(image files end in {', '.join(sorted(IMAGE_SUFFIXES))}; names starting with '.' "
                        "are ignored)")
    return found


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise UserError(f"image {path} is {describe_bytes(size)}, more than the "
                            f"{describe_bytes(MAX_IMAGE_FILE_BYTES)} an image file may have; refusing to read it")
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read image {path}: {exc}") from exc


@torch.no_grad()
def predict_images(weights: str | Path, images: Sequence[str | Path], tta: str | None = None,
                   device: str = "auto") -> Predictions:
    """Probabilities of each class for every image found in `images` (files or folders), from a run
    directory or a weights.safetensors; `tta` None: the run's own setting (none for bare weights)."""
    from filterprior.data import TensorLoader

    weights = Path(weights)
    if not weights.exists():
        raise UserError(f"{weights} does not exist; expected a run directory or a weights.safetensors file")
    model, meta = load_exported_model(weights)
    tta = run_tta(weights, tta)
    image_size = check_image_size(meta.get("image_size", 32), f"{weights_metadata_path(weights)}: image_size")
    classes = [str(c) for c in meta.get("classes") or range(meta["num_classes"])]
    files = find_images(images)
    dev = resolve_device(device)
    model.to(dev).eval()
    chunks = []
    for start in range(0, len(files), BATCH):
        batch = files[start:start + BATCH]
        pixels = decode_images([(str(p), _read(p)) for p in batch], image_size)
        loader = TensorLoader(pixels, np.zeros(len(batch), dtype=np.int64), BATCH, shuffle=False, augment=None,
                              mean=tuple(meta["mean"]), std=tuple(meta["std"]), device=dev)
        for x, _ in loader:
            chunks.append(torch.softmax(predict_logits(model, x, tta, loader.black).float(), dim=1).cpu())
    probs = torch.cat(chunks).numpy()
    return Predictions(paths=[str(p) for p in files], classes=classes, probs=probs, tta=tta)


def predictions_csv(pred: Predictions, top_k: int | None = None) -> str:
    """CSV text: `path,predicted,confidence`, then the probability of every class (`p_<class>` columns,
    in the run's class order), or with `top_k` the k most likely classes and their probabilities
    (`top1,p_top1,...`). Probabilities are written with 6 decimals."""
    n_classes = len(pred.classes)
    if top_k is not None and not 1 <= top_k <= n_classes:
        raise UserError(f"--top-k {top_k} is not valid: expected 1 to {n_classes} (the model's classes)")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["path", "predicted", "confidence"]
    if top_k is None:
        header += [f"p_{c}" for c in pred.classes]
    else:
        for k in range(1, top_k + 1):
            header += [f"top{k}", f"p_top{k}"]
    writer.writerow(header)
    for path, p in zip(pred.paths, pred.probs):
        best = int(p.argmax())
        row = [path, pred.classes[best], f"{p[best]:.6f}"]
        if top_k is None:
            row += [f"{v:.6f}" for v in p]
        else:
            for i in np.argsort(-p, kind="stable")[:top_k]:
                row += [pred.classes[i], f"{p[i]:.6f}"]
        writer.writerow(row)
    return out.getvalue()
