"""Pictures: filter grids, training curves, confusion matrices and accuracy against data size (PNG files
or bytes), drawn for runs, banks and studies alike; the HTML report embeds them."""

from filterprior.figures.filters import filter_grid_png_bytes, plot_filter_grid
from filterprior.figures.plots import (
    plot_accuracy_vs_size,
    plot_confusion,
    plot_curves,
    read_confusion_csv,
    read_metrics_csv,
    write_confusion_csv,
)

__all__ = [
    "filter_grid_png_bytes",
    "plot_accuracy_vs_size",
    "plot_confusion",
    "plot_curves",
    "plot_filter_grid",
    "read_confusion_csv",
    "read_metrics_csv",
    "write_confusion_csv",
]
