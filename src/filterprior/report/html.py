"""One self-contained HTML file for a study directory or for a single run directory.

Everything is inside the file: images as base64 PNG data URIs, CSS inline, no scripts, no links out, so
the report can be mailed, archived or opened offline. Pieces that are missing (no bank.png, a run without
curves) are left out and listed at the end of the page; only a directory with neither results.csv nor
metrics.json is an error.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

from filterprior.errors import UserError
from filterprior.report.html_pieces import esc, figure, markdown, row, table
from filterprior.figures.plots import (
    accuracy_vs_size_png_bytes,
    confusion_png_bytes,
    curves_png_bytes,
    read_confusion_csv,
)
from filterprior.results import (
    BASELINE,
    HIDDEN_TEST_NOTE,
    ResultRow,
    SummaryRow,
    mixed_recipes_note,
    percent,
    read_results_csv,
    summarize,
    summary_cells,
    summary_header,
    summary_legend,
)
from filterprior.utils import atomic_write_text, read_json

__all__ = ["build_report"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto;
       max-width: 1150px; padding: 0 16px; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0; } .date { color: #666; margin-top: 4px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
tr.best td { font-weight: bold; background: #eef6ee; }
.row { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { flex: 1 1 240px; margin: 0; } figure.wide { flex: 1 1 480px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #444; text-align: center; }
pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 12px; }
.note { color: #666; font-size: 13px; }
"""


class _Page:
    """Collects the page's sections and a note for every piece that had to be left out."""

    def __init__(self, root: Path):
        self.root = root
        self.parts: list[str] = []
        self.left_out: list[str] = []
        self.broken: list[str] = []  # files present but unreadable: also told on stderr, not only in the page

    def add(self, text: str) -> None:
        self.parts.append(text)

    def png_file(self, path: Path) -> bytes | None:
        if not path.is_file():
            self.left_out.append(f"{self.name(path)} (not found)")
            return None
        data = path.read_bytes()
        if not data.startswith(PNG_MAGIC):
            self.left_out.append(f"{self.name(path)} (not a PNG file)")
            self.broken.append(f"{path} is not a PNG file")
            return None
        return data

    def attempt(self, what: str, make: Callable[[], Any]) -> Any:
        """Run `make`; on bad or unreadable input leave the piece out with a note instead of failing."""
        try:
            return make()
        except (UserError, OSError, ValueError, KeyError) as exc:
            self.left_out.append(f"{what} ({exc})")
            self.broken.append(f"{what}: {exc}")
            return None

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


# ------------------------------------------------------------------------------------------ pieces


def _accuracy_scale(values: list[float]) -> float:
    """For a run's metrics.json: 100 when every accuracy is a fraction in [0, 1] (shown as %), else 1."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return 100.0 if finite and max(abs(v) for v in finite) <= 1.0 else 1.0


def _read_json(page: _Page, path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        page.left_out.append(f"{page.name(path)} (not found)")
        return None
    return page.attempt(str(page.name(path)), lambda: read_json(path))


def _run_curves(page: _Page, run: Path) -> bytes | None:
    if (run / "curves.png").is_file():
        return page.png_file(run / "curves.png")
    if (run / "metrics.csv").is_file():
        csv_path = run / "metrics.csv"
        return page.attempt(f"curves from {page.name(csv_path)}", lambda: curves_png_bytes(csv_path))
    page.left_out.append(f"{page.name(run)}: curves (no curves.png or metrics.csv)")
    return None


def _run_confusion(page: _Page, run: Path, title: str) -> bytes | None:
    # Redrawn from confusion.csv where there is one, so every report shows the current picture (older
    # runs' confusion.png titles stated the accuracy twice); the PNG is the fallback.
    if (run / "confusion.csv").is_file():
        drawn = page.attempt(f"confusion from {page.name(run / 'confusion.csv')}",
                             lambda: confusion_png_bytes(*read_confusion_csv(run / "confusion.csv"), title=title))
        if drawn is not None or not (run / "confusion.png").is_file():
            return drawn
    if (run / "confusion.png").is_file():
        return page.png_file(run / "confusion.png")
    page.left_out.append(f"{page.name(run)}: confusion matrix (no confusion.png or confusion.csv)")
    return None


# ------------------------------------------------------------------------------------------ study


def _pick_representatives(rows: list[ResultRow], summary: list[SummaryRow]) -> dict[str, Any] | None:
    """The smallest size, the method with the highest mean accuracy there (the summary's: test, or the pool's
    for a study not yet tested; a prior or a transfer) and a seed both share."""
    if not rows:
        return None
    size = min(r.images_per_class for r in rows)
    at_size = [s for s in summary if s.images_per_class == size and s.method != BASELINE]
    best = max(at_size, key=lambda s: s.acc_mean).method if at_size else None
    methods = [m for m in (BASELINE, best) if m is not None]
    seeds_by_method = [{r.split_seed for r in rows if r.method == m and r.images_per_class == size}
                       for m in methods]
    shared = set.intersection(*seeds_by_method) if seeds_by_method else set()
    pool = shared or set.union(*seeds_by_method)
    seed = min(pool) if pool else None
    runs = {}
    for method in methods:
        match = [r for r in rows if r.method == method and r.images_per_class == size and r.split_seed == seed]
        if match:
            runs[method] = match[0]
    return {"size": size, "seed": seed, "best": best, "runs": runs}


def _results_section(page: _Page, summary: list[SummaryRow], metric: str) -> None:
    # The cells come from results.summary_cells, as in summary.md: the two can never disagree.
    best_at: dict[int, float] = {}
    for s in summary:
        best_at[s.images_per_class] = max(best_at.get(s.images_per_class, -math.inf), s.acc_mean)
    rows = [[s.images_per_class, *summary_cells(s)] for s in summary]
    classes = ["best" if s.acc_mean == best_at[s.images_per_class] else "" for s in summary]
    page.add("<h2>Results</h2>")
    if metric == "val":
        page.add(f'<p class="note">{esc(HIDDEN_TEST_NOTE)}</p>')
    page.add(f'<p class="note">{esc(summary_legend(metric))} Bold: best mean {_ACCURACY[metric]} at that size.</p>')
    note = mixed_recipes_note(summary)
    if note:
        page.add(f'<p class="note">{esc(note)}</p>')
    page.add(table(["images/class", *summary_header(metric)], rows, text_columns=2, classes=classes))


_ACCURACY = {"test": "test accuracy", "val": "validation-pool accuracy"}


def _study_page(page: _Page) -> str:
    root = page.root
    results_csv = root / "results.csv"
    rows = read_results_csv(results_csv)  # a broken results.csv is the user's error, not a missing piece
    # A study whose runs were all trained without their test read (study --hide-test) shows its pool.
    metric = "test" if any(r.test_acc is not None for r in rows) or not rows else "val"
    accuracy = _ACCURACY[metric]
    summary = summarize(rows, metric=metric)
    if summary:
        # summary.md holds the same statistics (both from results.summary_cells), so it is not repeated.
        _results_section(page, summary, metric)
    else:
        page.add("<h2>Results</h2><p>No finished runs in results.csv yet.</p>")
        if (root / "summary.md").is_file():
            page.add(markdown((root / "summary.md").read_text(encoding="utf-8")))
    if rows:
        plot = page.attempt("accuracy vs size plot", lambda: accuracy_vs_size_png_bytes(results_csv, metric))
        if plot:
            sizes = sorted({r.images_per_class for r in rows})
            if len(sizes) == 1:  # one size: the plot is a bar per method
                heading, caption = f"{accuracy.capitalize()} by method", f"{accuracy} at {sizes[0]} images per class"
            else:
                heading, caption = "Accuracy against data size", f"{accuracy} against images per class"
            page.add(f"<h2>{esc(heading)}</h2>" + row([figure(plot, caption, wide=True)]))

    chosen = _pick_representatives(rows, summary)
    if chosen:
        runs = {m: root / r.run_dir for m, r in chosen["runs"].items() if r.run_dir}
        where = f"{chosen['size']} images per class, split seed {chosen['seed']}"
        filters = [figure(page.png_file(root / "bank.png"), "filter bank (the prior's real kernels)")]
        if BASELINE in runs:
            filters.append(figure(page.png_file(runs[BASELINE] / "filters_start.png"), f"{BASELINE}: start"))
            filters.append(figure(page.png_file(runs[BASELINE] / "filters_end.png"), f"{BASELINE}: end"))
        best = chosen["best"]
        if best in runs:
            filters.append(figure(page.png_file(runs[best] / "filters_end.png"), f"{best} (highest mean {accuracy} here): end"))
        if any(filters):
            page.add(f"<h2>First-layer filters</h2><p class=\"note\">{esc(where)}.</p>" + row(filters))
        for method, run in runs.items():
            label = f"{method}{f' (highest mean {accuracy} here)' if method == best else ''}"
            metrics = _read_json(page, run / "metrics.json")
            headline = ""
            if metrics and isinstance(metrics.get("test_acc"), (int, float)):
                headline = f" — test accuracy {percent(metrics['test_acc'])}%"
            curves = figure(_run_curves(page, run), f"{label}: curves", wide=True)
            confusion = None
            if metric == "test":  # a run not yet tested has no confusion matrix, by design
                confusion = figure(_run_confusion(page, run, label), f"{label}: test confusion matrix")
            if curves or confusion:
                page.add(f"<h2>Run: {esc(label)}</h2><p class=\"note\">{esc(where)}{esc(headline)}; "
                         f"{esc(page.name(run))}</p>" + row([curves, confusion]))

    if rows:
        ordered = sorted(rows, key=lambda r: (r.images_per_class, r.method, r.split_seed))
        all_rows = [[r.method, r.images_per_class, r.split_seed, percent(r.test_acc), percent(r.val_acc),
                     f"{r.wall_time_s:.1f}", r.config_hash, r.recipe_hash or "—", r.run_dir] for r in ordered]
        page.add(f"<h2>All runs</h2><details><summary>{len(rows)} finished runs</summary>"
                 + table(["method", "images/class", "split seed", "test acc (%)", "val acc (%)", "wall time (s)",
                           "config hash", "recipe hash", "run dir"], all_rows, text_columns=2) + "</details>")
    return f"filterprior study: {root.name}"


# ------------------------------------------------------------------------------------- single run


def _single_run_page(page: _Page) -> str:
    run = page.root
    metrics = read_json(run / "metrics.json", "run metrics")
    scale = _accuracy_scale([v for k, v in metrics.items() if k.endswith("_acc") and isinstance(v, (int, float))])
    keys = ["test_acc", "val_acc", "test_loss", "val_loss", "model", "prior", "images_per_class", "split_seed",
            "epochs", "steps", "params", "wall_time_s"]
    summary = []
    for key in keys:
        if key not in metrics:
            continue
        value = metrics[key]
        if key.endswith("_acc") and isinstance(value, (int, float)):
            value = f"{value * scale:.2f}{'%' if scale == 100 else ''}"
        elif isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        summary.append([key, value])
    page.add("<h2>Summary</h2>" + table(["metric", "value"], summary, text_columns=2))

    classes, per_class = metrics.get("classes"), metrics.get("per_class_acc")
    if isinstance(per_class, dict):
        classes, per_class = list(per_class), list(per_class.values())
    if isinstance(classes, list) and isinstance(per_class, list) and len(classes) == len(per_class):
        rows = [[c, f"{a * scale:.2f}" if isinstance(a, (int, float)) else a] for c, a in zip(classes, per_class)]
        page.add("<h2>Per-class test accuracy</h2>" + table(["class", "accuracy"], rows))

    filters = [figure(page.png_file(run / "filters_start.png"), "first-layer filters: start"),
               figure(page.png_file(run / "filters_end.png"), "first-layer filters: end")]
    if any(filters):
        page.add("<h2>First-layer filters</h2>" + row(filters))
    curves = figure(_run_curves(page, run), "curves", wide=True)
    confusion = figure(_run_confusion(page, run, run.name), "test confusion matrix")
    if curves or confusion:
        page.add("<h2>Training</h2>" + row([curves, confusion]))
    if (run / "config.yaml").is_file():
        page.add("<h2>Config</h2><details><summary>config.yaml</summary><pre>"
                 + esc((run / "config.yaml").read_text(encoding="utf-8")) + "</pre></details>")
    return f"filterprior run: {run.name}"


# ----------------------------------------------------------------------------------------- public


def build_report(runs_dir: str | os.PathLike, out_html: str | os.PathLike) -> Path:
    """Write one self-contained HTML report for a study directory (results.csv) or a run (metrics.json).

    Missing pieces are listed in the page; files that are there but unreadable are also warned about
    on stderr, naming the file, and the rest of the report is still written.
    """
    root = Path(runs_dir)
    page = _Page(root)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise UserError(f"{root} {what}; expected a study directory (results.csv) or a run directory (metrics.json)")
    if (root / "results.csv").is_file():
        title = _study_page(page)
    elif (root / "metrics.json").is_file():
        title = _single_run_page(page)
    else:
        raise UserError(
            f"{root} has neither results.csv (a study directory) nor metrics.json (a run directory)"
        )
    for problem in dict.fromkeys(page.broken):
        print(f"warning: {problem}; left out of the report", file=sys.stderr)
    if page.left_out:
        items = "".join(f"<li>{esc(n)}</li>" for n in dict.fromkeys(page.left_out))
        page.add(f'<h2>Left out</h2><ul class="note">{items}</ul>')
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    document = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"date\">generated {esc(date)} from {esc(root.resolve())}</p>"
        + "\n".join(page.parts) + "</body></html>\n"
    )
    out = Path(out_html)
    atomic_write_text(out, document)
    return out
