"""Pictures of one run (training curves, confusion matrix) and of a study (accuracy against data size).

Each `plot_*` writes a PNG atomically and returns its path; each `*_png_bytes` returns the same picture as
bytes, which the HTML report embeds without touching the run directory.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from filterprior.errors import UserError
from filterprior.figures.common import figure_png_bytes, new_figure, save_figure
from filterprior.results import order_methods, read_results_csv, summarize
from filterprior.utils import atomic_write_text

# ------------------------------------------------------------------------------------------- curves


def read_metrics_csv(metrics_csv: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a run's metrics.csv as float arrays; empty cells (not evaluated that epoch) are NaN."""
    path = Path(metrics_csv)
    if not path.is_file():
        raise UserError(f"metrics file {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            names = list(reader.fieldnames or [])
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"metrics file {path} is not a readable CSV file ({exc})") from None
    if not names or not rows:
        raise UserError(f"metrics file {path} has no rows; expected a header and one row per epoch")

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    columns = {name: np.array([number(row.get(name)) for row in rows]) for name in names}
    _check_curve_columns(path, columns)
    return columns


CURVE_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc")


def _check_curve_columns(path: Path, columns: dict[str, np.ndarray]) -> None:
    """A file with no numeric loss or accuracy column would draw an empty picture: refuse it instead."""
    if not any(name in columns and np.isfinite(columns[name]).any() for name in CURVE_COLUMNS):
        raise UserError(
            f"metrics file {path} has no numbers in any of the columns {', '.join(CURVE_COLUMNS)}; "
            "expected a run's metrics.csv"
        )


def _line(ax, x: np.ndarray, y: np.ndarray, label: str, **style) -> None:
    keep = np.isfinite(y)
    if keep.any():
        # Sparse series (validation every N epochs) get markers so single points still show.
        marker = "o" if keep.sum() < len(y) or keep.sum() == 1 else None
        ax.plot(x[keep], y[keep], label=label, marker=marker, markersize=3, **style)


def _curves_figure(metrics_csv: str | os.PathLike):
    columns = read_metrics_csv(metrics_csv)
    count = len(next(iter(columns.values())))
    x = columns.get("epoch", np.arange(1, count + 1, dtype=float))
    layers = sorted({n.split("/", 1)[1] for n in columns if n.startswith(("d_real/", "d_fake/"))})
    prior_names = sorted(n for n in columns if n.startswith("prior/"))
    panels = ["loss", "accuracy"] + (["d"] if layers else []) + (["prior"] if prior_names else [])
    ncols = 2
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(11, 3.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        if panel in ("loss", "accuracy"):
            key = "loss" if panel == "loss" else "acc"
            for split, colour in (("train", "tab:blue"), ("val", "tab:orange")):
                if f"{split}_{key}" in columns:
                    _line(ax, x, columns[f"{split}_{key}"], split, color=colour)
            ax.set_title(panel)
        elif panel == "d":
            for index, layer in enumerate(layers):
                colour = f"C{index % 10}"
                if f"d_real/{layer}" in columns:
                    _line(ax, x, columns[f"d_real/{layer}"], f"D(real) {layer}", color=colour)
                if f"d_fake/{layer}" in columns:
                    _line(ax, x, columns[f"d_fake/{layer}"], f"D(fake) {layer}", color=colour, linestyle="--")
            ax.set_title("discriminator: D(real) solid, D(fake) dashed")
        else:
            for name in prior_names:
                _line(ax, x, columns[name], name.removeprefix("prior/"))
            ax.set_title("prior losses (after λ)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_curves(metrics_csv: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Loss and accuracy against epoch (train; val where present), plus D(real)/D(fake) and prior losses."""
    return save_figure(_curves_figure(metrics_csv), path)


def curves_png_bytes(metrics_csv: str | os.PathLike) -> bytes:
    return figure_png_bytes(_curves_figure(metrics_csv))


# ---------------------------------------------------------------------------------------- confusion


def _check_confusion(matrix: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(classes):
        raise UserError(
            f"confusion matrix: shape {matrix.shape} does not match {len(classes)} classes; "
            "expected a square (classes x classes) matrix"
        )
    return matrix


def _confusion_title(matrix: np.ndarray, title: str | None) -> str:
    """`title`, plus the matrix's accuracy unless the title already states an accuracy (the engine's does)."""
    if title and "accuracy" in title.lower():
        return title
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    return f"{title + ' — ' if title else ''}accuracy {accuracy:.1%}"


def _confusion_figure(matrix: np.ndarray, classes: Sequence[str], title: str | None):
    matrix = _check_confusion(matrix, classes)
    count = len(classes)
    totals = matrix.sum(axis=1, keepdims=True)
    # Colour by the fraction of each true class, so rare and common classes read the same way.
    fractions = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    side = min(14.0, max(4.5, 0.45 * count + 2))
    fig = new_figure(side + 1, side)
    ax = fig.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    labels = [str(c) for c in classes]
    if count <= 40:
        ax.set_xticks(range(count), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(count), labels, fontsize=8)
    if count <= 20:
        for i in range(count):
            for j in range(count):
                colour = "white" if fractions[i, j] > 0.55 else "black"
                ax.text(j, i, f"{matrix[i, j]:g}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(_confusion_title(matrix, title), fontsize=10)
    fig.tight_layout()
    return fig


def plot_confusion(
    matrix: np.ndarray, classes: Sequence[str], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Confusion matrix (rows: true class), coloured row-normalised, counts written when <= 20 classes."""
    return save_figure(_confusion_figure(matrix, classes, title), path)


def confusion_png_bytes(matrix: np.ndarray, classes: Sequence[str], title: str | None = None) -> bytes:
    return figure_png_bytes(_confusion_figure(matrix, classes, title))


def write_confusion_csv(matrix: np.ndarray, classes: Sequence[str], path: str | os.PathLike) -> Path:
    """Header `true\\predicted, <class>...`, then one row per true class: its name and the counts."""
    matrix = _check_confusion(matrix, classes)
    lines = [",".join(["true\\predicted", *(_csv_cell(str(c)) for c in classes)])]
    for name, row in zip(classes, matrix):
        lines.append(",".join([_csv_cell(str(name)), *(f"{v:g}" for v in row)]))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n') else text


def read_confusion_csv(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Inverse of `write_confusion_csv`: (matrix, classes)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"confusion file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.reader(handle) if r]
    if len(rows) < 2:
        raise UserError(f"confusion file {path} is empty; expected a header row and one row per class")
    classes = rows[0][1:]
    try:
        matrix = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    except ValueError as exc:
        raise UserError(f"confusion file {path}: {exc}; expected counts after each row's class name") from None
    if matrix.shape != (len(classes), len(classes)):
        raise UserError(f"confusion file {path}: {matrix.shape} counts for {len(classes)} classes")
    if np.all(matrix == np.round(matrix)):
        matrix = matrix.astype(np.int64)
    return matrix, classes


# -------------------------------------------------------------------------------- accuracy vs size


_ACCURACY_OF = {"test": "test accuracy", "val": "validation-pool accuracy"}


def _accuracy_vs_size_figure(results_csv: str | os.PathLike, metric: str = "test"):
    rows = read_results_csv(results_csv)
    if not rows:
        raise UserError(f"{results_csv}: no finished runs to plot")
    table = summarize(rows, metric=metric)  # the same means and stds as summary.md and the HTML table
    if not table:
        raise UserError(f"{results_csv}: no run has a validation-pool accuracy to plot")
    what = _ACCURACY_OF[metric]
    order = order_methods(r.method for r in rows)
    # One line (or bar) per table label: a method with runs of several configs is shown apart, never averaged.
    methods = [label for _, label in sorted({(order.index(s.method), s.label or s.method) for s in table})]
    sizes = sorted({s.images_per_class for s in table})  # a size with no pool figure has no point
    if len(sizes) == 1:
        return _accuracy_bars_figure(table, methods, sizes[0], what)
    from matplotlib import colormaps

    fig = new_figure(8.5, 4.8)
    ax = fig.subplots()
    for index, method in enumerate(methods):
        # A small multiplicative offset per method keeps error bars at the same size from overlapping.
        offset = 1 + 0.03 * (index - (len(methods) - 1) / 2)
        cells = [s for s in table if (s.label or s.method) == method]
        xs = [s.images_per_class * offset for s in cells]
        means = [100 * s.acc_mean for s in cells]
        stds = [0.0 if s.acc_std is None else 100 * s.acc_std for s in cells]  # one seed: no bar
        # matplotlib's default cycle has 10 colours: past them, tab20's and a marker tell methods apart.
        colour = f"C{index}" if len(methods) <= 10 else colormaps["tab20"](index % 20)
        ax.errorbar(xs, means, yerr=stds, label=method, color=colour, marker="os^Dv"[index // 10 % 5],
                    markersize=4, capsize=3)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("images per class (log scale)")
    ax.set_ylabel(f"{what} (%)")
    ax.set_title(f"{what}: mean ± std over split seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the plot, off the data
    fig.tight_layout()
    return fig


def _accuracy_bars_figure(table, methods: list[str], size: int, what: str = "test accuracy"):
    """One size only: a bar per method (mean accuracy), error bars the std over split seeds."""
    cells = {s.label or s.method: s for s in table if s.images_per_class == size}
    means = [100 * cells[m].acc_mean for m in methods]
    stds = [0.0 if cells[m].acc_std is None else 100 * cells[m].acc_std for m in methods]  # one seed: none
    spread = any(cells[m].acc_std is not None for m in methods)
    fig = new_figure(max(4.5, 1.1 * len(methods) + 2.5), 4.8)
    ax = fig.subplots()
    xs = np.arange(len(methods))
    bars = ax.bar(xs, means, yerr=stds if spread else None, capsize=4, color=[f"C{i % 10}" for i in range(len(methods))],
                  edgecolor="black", linewidth=0.5)
    ax.bar_label(bars, labels=[f"{m:.1f}" for m in means], padding=3, fontsize=8)
    ax.set_xticks(xs, methods, rotation=30 if len(methods) > 6 else 0, ha="right" if len(methods) > 6 else "center")
    ax.set_ylim(0, max(m + s for m, s in zip(means, stds)) * 1.15 or 1)
    ax.set_xlabel("method")
    ax.set_ylabel(f"{what} (%)")
    how = "mean ± std over split seeds" if spread else "one split seed each: no error bars"
    ax.set_title(f"{what} at {size} images per class\n{how}", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_accuracy_vs_size(results_csv: str | os.PathLike, path: str | os.PathLike, metric: str = "test") -> Path:
    """Mean test accuracy per method against images per class (log x), error bars: std over seeds.

    With a single images-per-class size there is no x axis to speak of: one bar per method instead.
    `metric` "val": the validation pool's accuracy instead (a study run with --hide-test).
    """
    return save_figure(_accuracy_vs_size_figure(results_csv, metric), path)


def accuracy_vs_size_png_bytes(results_csv: str | os.PathLike, metric: str = "test") -> bytes:
    return figure_png_bytes(_accuracy_vs_size_figure(results_csv, metric))
