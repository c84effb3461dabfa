"""Where the README's results table stands: our rows against the published from-scratch figures and the
aims of issue 11, drawn from the recorded results files (never typed-in means), as one picture.

    .venv/bin/python benchmarks/plot_standing.py -o benchmarks/results/standing.png

ROWS says which results file holds each row at each size; change it when a row is re-measured, and the
picture follows the files. The published figures are constants: they are other people's results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from filterprior.errors import UserError
from filterprior.figures.common import new_figure, save_figure
from filterprior.results import read_results_csv
from filterprior.stats import mean_std

RESULTS = Path(__file__).resolve().parent / "results"

# label -> {images a class: (results file under benchmarks/results, method)}
ROWS = {
    "airnet from scratch, shared recipe (none-airnet)": {
        10: ("study-results.csv", "none-airnet"), 50: ("study-results.csv", "none-airnet"),
        100: ("study-results.csv", "none-airnet")},
    "airnet from scratch, tuned on the pool (none-strong-airnet)": {
        10: ("study-bs16-10-results.csv", "none-strong-airnet"),
        50: ("study-e640-50-diagonal-results.csv", "none-strong-airnet"),
        100: ("study-cutmix320-100-diagonal-results.csv", "none-strong-airnet")},
    "the bank's best, chosen on the pool": {
        10: ("study-l2sp-aa-10-results.csv", "l2sp-strong-airnet"),
        50: ("study-l2sp-aa-50-results.csv", "l2sp-strong-airnet"),
        100: ("study-l2sp-aa-100-results.csv", "l2sp-strong-airnet")},
}
# Gauthier et al. 2022 (README of github bentherien/parametricScatteringNetworks): mean ± std over splits.
PUBLISHED = {
    "published: WRN-16-8 + AutoAugment": {10: (38.78, 0.72), 50: (62.97, 0.41), 100: (71.37, 0.31)},
    "published: learnable scattering + WRN": {10: (43.60, 0.87), 50: (63.13, 0.29), 100: (70.14, 0.26)},
}
AIMS = {"aim, from scratch": {10: 44, 50: 66, 100: 72}, "aim, the bank": {10: 60, 50: 75, 100: 80}}


def row_figures(cells: dict[int, tuple[str, str]], results_dir: Path) -> dict[int, tuple[float, float | None, int]]:
    """size -> (mean test accuracy %, std %, runs) of one method in one results file per size."""
    out = {}
    for size, (name, method) in cells.items():
        path = results_dir / name
        accs = [100 * r.test_acc for r in read_results_csv(path)
                if r.method == method and r.images_per_class == size and r.test_acc is not None]
        if not accs:
            raise UserError(f"{path}: no finished run of {method} at {size} images a class")
        mean, std = mean_std(accs)
        out[size] = (mean, std, len(accs))
    return out


def standing_figure(results_dir: Path = RESULTS):
    fig = new_figure(9.5, 5.0)
    ax = fig.subplots()
    sizes = sorted({s for cells in ROWS.values() for s in cells})
    for index, (label, cells) in enumerate(ROWS.items()):
        figures = row_figures(cells, results_dir)
        xs = sorted(figures)
        ax.errorbar(xs, [figures[s][0] for s in xs], yerr=[figures[s][1] or 0 for s in xs], label=label,
                    color=f"C{index}", marker="o", markersize=5, capsize=3, linewidth=2)
        for s in xs:
            ax.annotate(f"{figures[s][0]:.1f}", (s, figures[s][0]), textcoords="offset points", xytext=(6, -3),
                        fontsize=7, color=f"C{index}")
    for index, (label, cells) in enumerate(PUBLISHED.items(), start=len(ROWS)):
        xs = sorted(cells)
        ax.errorbar(xs, [cells[s][0] for s in xs], yerr=[cells[s][1] for s in xs], label=label, color=f"C{index}",
                    linestyle="--", marker="s", markersize=4, capsize=3, linewidth=1)
    # Each aim in the colour of the row it is for: the tuned from-scratch row (C1), the bank's (C2).
    for label, cells, marker, colour in zip(AIMS, AIMS.values(), ("_", "x"), ("C1", "C2")):
        xs = sorted(cells)
        ax.scatter(xs, [cells[s] for s in xs], marker=marker, s=260, linewidths=2.5, color=colour, label=label,
                   zorder=3)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("images per class (log scale)")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_title("Where we stand: mean ± std over split seeds 0–4, full test set once at the end\n"
                 "(ours on a JPEG copy of CIFAR-10; published figures on the original)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "standing.png", help="PNG to write")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the ROWS' results files are")
    args = parser.parse_args(argv)
    try:
        path = save_figure(standing_figure(args.results_dir), args.output)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
