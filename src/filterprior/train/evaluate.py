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

# On the CPU a forward pass over 100 images costs 1.6x less an image than one over 500 (airnet, one thread:
# the working set stays in cache; benchmarks/eval_speed.py), with the same logits to the bit (checked on one
# thread), so `predict` cuts bigger CPU batches into pieces of this size. GPUs keep the whole batch.
CPU_CHUNK = 100


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


def tta_views(tta: str, shift: int = TTA_SHIFT) -> list[tuple[bool, int, int]]:
    """The views a TTA mode averages, as (mirrored, dy, dx), in the order `predict` sums them. "flip": the
    images and their mirror images (the training recipe flips, so both views are ones the model has
    learnt); "flip-shift": also each of the two moved `shift` pixels down, up, right and left (10 views;
    the random crop taught those too); "flip-shift-diagonal": the four diagonal moves as well (18 views)."""
    if tta not in TTA_MODES:
        raise ValueError(f"tta {tta!r} is not known; expected one of {', '.join(TTA_MODES)}")
    plain = [(False, 0, 0), (True, 0, 0)]
    if tta == "none":
        return plain[:1]
    if tta == "flip":
        return plain
    moves = [(shift, 0), (-shift, 0), (0, shift), (0, -shift)]
    if tta == "flip-shift-diagonal":
        moves += [(shift, shift), (shift, -shift), (-shift, shift), (-shift, -shift)]
    return plain + [(mirrored, dy, dx) for mirrored, _, _ in plain for dy, dx in moves]


def predict(model: nn.Module, images: torch.Tensor, tta: str = "none",
            fill: torch.Tensor | float = 0.0, shift: int = TTA_SHIFT) -> torch.Tensor:
    """Logits for a batch, averaged over the views of `tta` (`tta_views`); a moved view's border is
    filled with `fill`, the batches' black pixel."""
    if images.device.type == "cpu" and len(images) > CPU_CHUNK:
        return torch.cat([predict(model, part, tta, fill, shift) for part in images.split(CPU_CHUNK)])
    views = tta_views(tta, shift)
    mirror = torch.flip(images, dims=[3]) if len(views) > 1 else images
    logits = None
    for mirrored, dy, dx in views:  # one view at a time: a batch of all of them would hold 10 or 18 times the activations
        out = model(cpu_layout(shifted(mirror if mirrored else images, dy, dx, fill)))
        logits = out if logits is None else logits + out
    return logits / len(views)


def cpu_layout(images: torch.Tensor) -> torch.Tensor:
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
