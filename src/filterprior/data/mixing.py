"""mixup and CutMix on whole batches, and the two-label loss they call for.

A mixed batch pairs each image with a partner from the same batch (a random permutation) and one weight
`lam` for the batch, drawn from Beta(alpha, alpha) as in the papers' reference code: mixup blends the
images, CutMix pastes a box of the partner (and `lam` becomes the share of the image left uncovered). The
loss is lam * CE(own label) + (1 - lam) * CE(partner's label); training accuracy counts a prediction
against the dominant label (own when lam >= 1/2). All draws come from a generator seeded by
(seed, epoch), so a resumed epoch mixes exactly as the uninterrupted one did.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from filterprior.errors import UserError


@dataclass(frozen=True)
class MixConfig:
    mixup: float = 0.0  # Beta(alpha, alpha) for mixup; 0: off
    cutmix: float = 0.0  # Beta(alpha, alpha) for CutMix; 0: off
    prob: float = 1.0  # chance that a batch is mixed at all (both on: mixup or CutMix, half each)

    def __post_init__(self) -> None:
        for key in ("mixup", "cutmix"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"{key} alpha must be a finite number, 0 or more (0: off), got {value!r}")
        if not 0 <= self.prob <= 1:
            raise UserError(f"mix probability must be in [0, 1], got {self.prob!r}")

    @property
    def on(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.prob > 0


@dataclass
class Targets:
    """A batch's labels: `labels` alone, or mixed with `partner` at weight `lam` (own labels' share)."""

    labels: torch.Tensor
    partner: torch.Tensor | None = None
    lam: float = 1.0
    kind: str = "none"  # none | mixup | cutmix

    def loss(self, logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        own = F.cross_entropy(logits, self.labels, label_smoothing=label_smoothing)
        if self.partner is None:
            return own
        other = F.cross_entropy(logits, self.partner, label_smoothing=label_smoothing)
        return self.lam * own + (1.0 - self.lam) * other

    def dominant(self) -> torch.Tensor:
        """The label that counts for training accuracy: the one with the larger share."""
        return self.labels if self.partner is None or self.lam >= 0.5 else self.partner


def _mix_seed(seed: int, epoch: int) -> int:
    return int.from_bytes(hashlib.sha256(f"mix:{seed}:{epoch}".encode()).digest()[:8], "little")


class BatchMixer:
    """Call `set_epoch(e)` before each epoch, then `mixer(images, labels)` per batch -> (images, Targets)."""

    def __init__(self, config: MixConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = int(seed)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng(_mix_seed(self.seed, int(epoch)))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Targets]:
        cfg = self.config
        if not cfg.on or self.rng.random() >= cfg.prob:
            return images, Targets(labels)
        use_cutmix = cfg.cutmix > 0 and (cfg.mixup <= 0 or self.rng.random() < 0.5)
        lam = float(self.rng.beta(*(2 * [cfg.cutmix if use_cutmix else cfg.mixup])))
        order = torch.as_tensor(self.rng.permutation(len(labels)), device=images.device)  # host to device: no wait
        partner = images.index_select(0, order)
        if use_cutmix:
            images, lam = cutmix(images, partner, lam, self.rng)
        else:
            images = lam * images + (1.0 - lam) * partner
        return images, Targets(labels, labels.index_select(0, order), lam, "cutmix" if use_cutmix else "mixup")


def cutmix(images: torch.Tensor, partner: torch.Tensor, lam: float, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """Paste a box covering about 1 - lam of the image from `partner` (centre uniform, clipped at the
    edges, as in the CutMix reference code); returns the images and lam recomputed from the box."""
    h, w = images.shape[2:]
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    out = images.clone()
    out[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
    return out, 1.0 - (bottom - top) * (right - left) / (h * w)
