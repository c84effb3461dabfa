"""Evaluation: loss, top-1 accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from filterprior.config import TTA_MODES


@dataclass
class EvalResult:
    loss: float
    acc: float
    confusion: np.ndarray  # rows: true class, columns: predicted

    @property
    def per_class_acc(self) -> list[float]:
        totals = self.confusion.sum(axis=1)
        return [float(self.confusion[i, i] / t) if t else float("nan") for i, t in enumerate(totals)]


def predict(model: nn.Module, images: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Logits for a batch; tta="flip" averages them over the images and their mirror images (the
    training recipe flips, so both views are ones the model has learnt)."""
    logits = model(images)
    if tta == "flip":
        logits = (logits + model(torch.flip(images, dims=[3]))) / 2
    elif tta != "none":
        raise ValueError(f"tta {tta!r} is not known; expected one of {', '.join(TTA_MODES)}")
    return logits


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, tta: str = "none") -> EvalResult:
    was_training = model.training
    model.eval()
    total_loss, count = 0.0, 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for images, labels in loader:
        logits = predict(model, images, tta)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        count += labels.numel()
        preds = logits.argmax(dim=1)
        index = (labels * num_classes + preds).cpu()
        confusion += torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)
    model.train(was_training)
    matrix = confusion.numpy()
    correct = int(np.trace(matrix))
    return EvalResult(loss=total_loss / max(1, count), acc=correct / max(1, count), confusion=matrix)
