"""Grids of convolution kernels, drawn so that grids of the same size compare side by side.

Shapes accepted:
- `(N, kh, kw)`: 2-D kernel slices, each drawn with a diverging colormap (red > 0 > blue).
- `(N, C, kh, kw)`: whole filters.
  - `C == 3`: drawn as one RGB image (input channels taken as R, G, B; mid-grey is zero), the usual
    picture of a first layer's filters.
  - `C == 1`: drawn like a 2-D slice.
  - otherwise: the first `MAX_CHANNELS` channels side by side in one panel, with the diverging colormap
    and one scale for the whole filter, so the channels of a filter compare with each other.

Every panel is scaled on its own (vmax = its largest |value|): the grid shows the *shape* of each kernel,
which is what a filter prior acts on, not its norm. The layout depends only on the number and shape of the
panels shown (and `ncols`), so start, end and bank grids with the same N line up panel for panel.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps

from filterprior.errors import UserError
from filterprior.figures.common import figure_png_bytes, new_figure, save_figure

CMAP = "RdBu_r"
MAX_CHANNELS = 8  # whole filters with C not in (1, 3): channels shown side by side, at most this many
CELL_INCHES = 0.7
MAX_WIDTH_INCHES = 12.0  # wide panels shrink rather than make a poster


def _as_numpy(kernels: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(kernels, torch.Tensor):
        kernels = kernels.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(kernels, dtype=np.float32)
    if array.ndim not in (3, 4) or array.shape[0] == 0 or 0 in array.shape:
        raise UserError(
            f"kernels: shape {tuple(array.shape)} is not (N, kh, kw) or (N, C, kh, kw) with N >= 1"
        )
    return np.nan_to_num(array)


def _scale(kernel: np.ndarray) -> float:
    vmax = float(np.abs(kernel).max())
    return vmax if vmax > 0 else 1.0  # an all-zero kernel is drawn as zero, not divided by zero


def _panels(array: np.ndarray) -> tuple[list[np.ndarray], bool, str]:
    """One image per kernel; RGB images are already mapped to [0, 1]. Returns (panels, is_rgb, note)."""
    if array.ndim == 3:
        return [k / _scale(k) for k in array], False, "2-D kernels"
    channels = array.shape[1]
    if channels == 3:
        return [np.clip(0.5 + 0.5 * f.transpose(1, 2, 0) / _scale(f), 0, 1) for f in array], True, "RGB filters"
    if channels == 1:
        return [f[0] / _scale(f) for f in array], False, "1-channel filters"
    shown = min(channels, MAX_CHANNELS)
    panels = []
    for f in array:
        scaled = f[:shown] / _scale(f[:shown])
        up = max(1, 12 // scaled.shape[1])  # enlarge small kernels so a one-pixel gap stays thin
        scaled = scaled.repeat(up, axis=1).repeat(up, axis=2)
        gap = np.full((scaled.shape[1], 1), np.nan)  # NaN draws as the colormap's "bad" colour: a dark bar
        pieces = [piece for c in scaled for piece in (c, gap)][:-1]
        panels.append(np.concatenate(pieces, axis=1))
    note = f"filters, channels 1-{shown} of {channels} side by side"
    return panels, False, note


def _draw(
    kernels: torch.Tensor | np.ndarray, title: str | None, max_kernels: int, ncols: int | None
):
    if max_kernels < 1:
        raise UserError(f"max_kernels: {max_kernels} is not a positive integer")
    array = _as_numpy(kernels)
    total = array.shape[0]
    panels, is_rgb, note = _panels(array[:max_kernels])
    count = len(panels)
    height, width = panels[0].shape[:2]
    aspect = width / height  # > 1 for channels side by side: fewer, wider columns keep the grid squarish
    ncols = ncols or min(count, math.ceil(math.sqrt(count / aspect)))
    if ncols < 1:
        raise UserError(f"ncols: {ncols} is not a positive integer")
    nrows = math.ceil(count / ncols)
    cell_h = min(CELL_INCHES, MAX_WIDTH_INCHES / (ncols * aspect))
    fig = new_figure(ncols * cell_h * aspect + 0.4, nrows * cell_h + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"wspace": 0.08, "hspace": 0.08})
    cmap = colormaps[CMAP].with_extremes(bad="#333333")  # the gap between channels
    for index, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= count:
            ax.set_axis_off()
            continue
        if is_rgb:
            ax.imshow(panels[index], interpolation="nearest")
        else:
            ax.imshow(panels[index], cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    shown = f"{count} of {total}" if count < total else f"{total}"
    heading = f"{title}\n" if title else ""
    fig.suptitle(f"{heading}{shown} {note}", fontsize=9)
    legend = "each scaled to its own max |w|; " + ("grey = 0" if is_rgb else "red > 0 > blue")
    fig.text(0.5, 0.005, legend, ha="center", va="bottom", fontsize=7, color="#555555")
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.35 / fig.get_figheight(),
                        top=1 - 0.6 / fig.get_figheight())
    return fig


def plot_filter_grid(
    kernels: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    title: str | None = None,
    max_kernels: int = 64,
    ncols: int | None = None,
) -> Path:
    """Draw the first `max_kernels` kernels as a grid and write it to `path` (PNG, atomically)."""
    return save_figure(_draw(kernels, title, max_kernels, ncols), path)


def filter_grid_png_bytes(
    kernels: torch.Tensor | np.ndarray,
    title: str | None = None,
    max_kernels: int = 64,
    ncols: int | None = None,
) -> bytes:
    """The same picture as `plot_filter_grid`, as PNG bytes (for embedding in the HTML report)."""
    return figure_png_bytes(_draw(kernels, title, max_kernels, ncols))
