"""Evaluation: loss, top-1 accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from filterprior.config import TTA_MODES

# Pixels that tta="flip-shift" moves each view: chosen among 1, 2 and 3 on the validation pool of the tuned
# from-scratch runs at 10, 50 and 100 a class (benchmarks/tta_on_pool.py; RESULTS "Shifted views at test time").
TTA_SHIFT = 3


@dataclass
class EvalResult:
    loss: float
    acc: float
    confusion: np.ndarray  # rows: true class, columns: predicted

    @property
    def per_class_acc(self) -> list[float]:
        totals = self.confusion.sum(axis=1)
        return [float(self.confusion[i, i] / t) if t else float("nan") for i, t in enumerate(totals)]


def shifted(images: torch.Tensor, dy: int, dx: int, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """`images` (B x C x H x W) moved dy pixels down and dx right; the uncovered border takes `fill`
    (a scalar or a 1 x C x 1 x 1 tensor), as training's random crop of a zero-padded image does."""
    if dy == 0 and dx == 0:
        return images
    b, c, h, w = images.shape
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a shift of ({dy}, {dx}) pixels leaves nothing of a {h} x {w} image")
    out = torch.as_tensor(fill, dtype=images.dtype, device=images.device).expand(b, c, h, w).clone()
    out[:, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[:, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def predict(model: nn.Module, images: torch.Tensor, tta: str = "none",
            fill: torch.Tensor | float = 0.0, shift: int = TTA_SHIFT) -> torch.Tensor:
    """Logits for a batch. tta="flip" averages them over the images and their mirror images (the
    training recipe flips, so both views are ones the model has learnt); "flip-shift" also over each of
    the two moved `shift` pixels up, down, left and right (10 views; the random crop taught those too),
    the border filled with `fill`, the batches' black pixel."""
    if tta not in TTA_MODES:
        raise ValueError(f"tta {tta!r} is not known; expected one of {', '.join(TTA_MODES)}")
    if tta == "none":
        return model(_cpu_layout(images))
    views = [images, torch.flip(images, dims=[3])]
    if tta == "flip-shift":
        moves = [(shift, 0), (-shift, 0), (0, shift), (0, -shift)]
        views += [shifted(v, dy, dx, fill) for v in views for dy, dx in moves]
    logits = model(_cpu_layout(views[0]))
    for view in views[1:]:  # one view at a time: a batch of all ten would hold ten times the activations
        logits = logits + model(_cpu_layout(view))
    return logits / len(views)


def _cpu_layout(images: torch.Tensor) -> torch.Tensor:
    """On the CPU, images in channels-last memory: oneDNN's convolutions then run 1.5-1.7x faster at inference
    (benchmarks/eval_speed.py), the model's own weights untouched. Other devices keep their layout."""
    if images.device.type == "cpu" and images.dim() == 4:
        return images.contiguous(memory_format=torch.channels_last)
    return images


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, tta: str = "none", shift: int = TTA_SHIFT) -> EvalResult:
    was_training = model.training
    model.eval()
    total_loss, count = 0.0, 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    fill = getattr(loader, "black", 0.0)  # a TensorLoader knows its normalisation; other iterables fill with 0
    for images, labels in loader:
        logits = predict(model, images, tta, fill, shift)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        count += labels.numel()
        preds = logits.argmax(dim=1)
        index = (labels * num_classes + preds).cpu()
        confusion += torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)
    model.train(was_training)
    matrix = confusion.numpy()
    correct = int(np.trace(matrix))
    return EvalResult(loss=total_loss / max(1, count), acc=correct / max(1, count), confusion=matrix)
