"""Pictures (filter grids, training curves, confusion matrices, accuracy against data size) and the
self-contained HTML report of a study or a run."""

from filterprior.report.filters import filter_grid_png_bytes, plot_filter_grid
from filterprior.report.html import build_report
from filterprior.report.plots import (
    plot_accuracy_vs_size,
    plot_confusion,
    plot_curves,
    read_confusion_csv,
    read_metrics_csv,
    write_confusion_csv,
)

__all__ = [
    "build_report",
    "filter_grid_png_bytes",
    "plot_accuracy_vs_size",
    "plot_confusion",
    "plot_curves",
    "plot_filter_grid",
    "read_confusion_csv",
    "read_metrics_csv",
    "write_confusion_csv",
]
