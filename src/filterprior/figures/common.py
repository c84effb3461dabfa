"""Figure plumbing shared by every picture: Agg figures that never touch pyplot, atomic saving.

Figures are built with `matplotlib.figure.Figure` on an Agg canvas instead of `pyplot`, so no global
backend is switched and no figure is registered with pyplot's manager: nothing is left open to leak,
and the code works the same on a headless server as inside a notebook.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from filterprior.utils import atomic_path

DPI = 100


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def figure_png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    fig.clear()  # frees the artists at once rather than at garbage collection
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write `fig` as PNG to `path` atomically (the temporary name has no .png, hence format=)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()
    return path
