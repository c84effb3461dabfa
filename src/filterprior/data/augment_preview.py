"""A picture of what a recipe's augmentation does: some training images, then what several epochs make of them.

Row r is one training image (one class per row where the set allows): its original, then the image the
loader yields for it in epochs 1, 2, ... -- crop, flip, the strong policy, cutout, and mixup or CutMix
with the other images of the picture, drawn exactly as training draws them (TensorLoader and BatchMixer
with the run's seed). A column whose batch was mixed says so, with the weight of the row's own image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from filterprior.data.loader import AugmentConfig, TensorLoader
from filterprior.data.mixing import BatchMixer, MixConfig
from filterprior.errors import UserError
from filterprior.figures.common import new_figure, save_figure

PLAIN = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # the loader then yields pixel / 255
GAP = 2  # pixels between images


def describe(augment: AugmentConfig | None, mix: MixConfig | None) -> str:
    """The recipe in a few words, e.g. 'crop 4 px, flip, randaugment n=2 m=9, mixup alpha 0.2'."""
    parts = []
    if augment is not None:
        if augment.crop_padding:
            parts.append(f"crop {augment.crop_padding} px")
        if augment.flip:
            parts.append("flip")
        if augment.policy == "randaugment":
            parts.append(f"randaugment n={augment.randaugment_n} m={augment.randaugment_m}")
        elif augment.policy != "none":
            parts.append(augment.policy)
        if augment.cutout:
            parts.append(f"cutout {augment.cutout}")
    if mix is not None and mix.on:
        kinds = [f"{name} alpha {alpha:g}" for name, alpha in (("mixup", mix.mixup), ("cutmix", mix.cutmix)) if alpha > 0]
        parts.append(" or ".join(kinds) + (f" (p {mix.prob:g})" if mix.prob < 1 else ""))
    return ", ".join(parts) or "no augmentation"


def _pick(labels: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """`rows` image indices, a different class per row while classes last, reproducible from `seed`."""
    order = np.random.default_rng(seed).permutation(len(labels))
    chosen: list[int] = []
    seen: set[int] = set()
    for i in order:  # one per class first
        if int(labels[i]) not in seen:
            chosen.append(int(i))
            seen.add(int(labels[i]))
        if len(chosen) == rows:
            break
    chosen += [int(i) for i in order if int(i) not in chosen][: rows - len(chosen)]
    return np.array(sorted(chosen, key=lambda i: (int(labels[i]), i)))


def augment_preview(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    augment: AugmentConfig | None,
    mix: MixConfig | None,
    path: str | os.PathLike,
    *,
    seed: int = 0,
    rows: int = 8,
    epochs: int = 7,
    classes: Sequence[str] | None = None,
) -> Path:
    """Write the picture (PNG) for N x H x W x 3 uint8 `images` (on any device) and their `labels`;
    returns the path. The augmentation runs on the CPU."""
    images = torch.as_tensor(images)
    labels = np.asarray(torch.as_tensor(labels).cpu())
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8 or len(images) == 0:
        raise UserError(f"augment preview needs N x H x W x 3 uint8 images, got {images.dtype} {tuple(images.shape)}")
    if rows < 1 or epochs < 1:
        raise UserError(f"augment preview needs 1 or more rows and epochs, got rows={rows}, epochs={epochs}")
    chosen = _pick(labels, min(rows, len(labels)), seed)
    batch = images[torch.from_numpy(chosen).to(images.device)].cpu()  # only the shown images leave the device
    loader = TensorLoader(batch, torch.from_numpy(labels[chosen]), len(chosen), shuffle=False, augment=augment,
                          seed=seed, **PLAIN)
    mixer = BatchMixer(mix or MixConfig(), seed=seed)
    columns = [batch.permute(0, 3, 1, 2).float() / 255]
    titles = ["original"]
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        mixer.set_epoch(epoch)
        x, y = next(iter(loader))
        x, targets = mixer(x, y)
        columns.append(x.clamp(0, 1))
        titles.append(f"epoch {epoch + 1}" + (f"\n{targets.kind} {targets.lam:.2f}" if targets.partner is not None else ""))
    return _draw(columns, titles, [_name(int(v), classes) for v in labels[chosen]], describe(augment, mix), path)


def _name(label: int, classes: Sequence[str] | None) -> str:
    return classes[label] if classes is not None and 0 <= label < len(classes) else str(label)


def _draw(columns: list[torch.Tensor], titles: list[str], row_names: list[str], subtitle: str,
          path: str | os.PathLike) -> Path:
    n, _, h, w = columns[0].shape
    grid = np.ones((n * (h + GAP) - GAP, len(columns) * (w + GAP) - GAP, 3), dtype=np.float32)
    for c, column in enumerate(columns):
        panels = column.permute(0, 2, 3, 1).cpu().numpy()
        for r in range(n):
            grid[r * (h + GAP): r * (h + GAP) + h, c * (w + GAP): c * (w + GAP) + w] = panels[r]
    side = 0.75  # inches per image, whatever its pixel size
    width, height = 1.4 + len(columns) * side, 0.9 + n * side  # room for row names and column titles
    fig = new_figure(width, height)
    ax = fig.add_axes((1.2 / width, 0.1 / height, len(columns) * side / width, n * side / height))
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([c * (w + GAP) + w / 2 for c in range(len(columns))], titles, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([r * (h + GAP) + h / 2 for r in range(n)], row_names, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(f"augmentation: {subtitle}", fontsize=9, y=0.995)
    return save_figure(fig, path)
