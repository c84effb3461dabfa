"""A study's results: results.csv (one row per finished cell) and summary.md (mean ± std per method).

The one source of results.csv's reading, statistics and cell formatting: the study writes them, and the
HTML report (filterprior.report.html) and the accuracy plot (filterprior.figures.plots) read them with
read_results_csv, summarize and summary_cells, so they always show the same numbers as summary.md.
Accuracies in metrics.json and results.csv are fractions in [0, 1]; the tables show them in %.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

from filterprior.errors import UserError
from filterprior.utils import atomic_write_text, read_json

CELL_FILE = "cell.json"  # written by the runner before a cell trains: method, size, seed, config hash
METRICS_FILE = "metrics.json"  # written last by the engine: its presence means the run finished
BASELINE = "none"


def baseline_of(method: str, methods: Iterable[str]) -> str:
    """The method `method`'s gain is measured against: `none-X` for a method named `…-X` when the study
    has `none-X` (the same model from scratch, e.g. finetune-airnet against none-airnet), else `none`."""
    if "-" not in method or method.startswith(BASELINE + "-"):  # `none` and the `none-X` baselines
        return BASELINE
    own = f"{BASELINE}-{method.rpartition('-')[2]}"
    return own if own in set(methods) else BASELINE


@dataclass(frozen=True)
class ResultRow:
    method: str
    images_per_class: int
    split_seed: int
    test_acc: float
    val_acc: float | None
    wall_time_s: float
    config_hash: str
    run_dir: str  # relative to the study's output directory, with forward slashes


RESULT_COLUMNS = [f.name for f in fields(ResultRow)]


def _get(data: dict, key: str, path: Path):
    if key not in data:
        raise UserError(f"{path} has no key {key!r}")
    return data[key]


def read_finished_cell(cell_dir: Path, out_dir: Path) -> ResultRow | None:
    """The cell's result row, or None when it has not finished (no metrics.json or no cell.json)."""
    cell_file, metrics_file = cell_dir / CELL_FILE, cell_dir / METRICS_FILE
    if not (cell_file.is_file() and metrics_file.is_file()):
        return None
    cell, metrics = read_json(cell_file), read_json(metrics_file)
    val_acc = metrics.get("val_acc")
    return ResultRow(
        method=str(_get(cell, "method", cell_file)),
        images_per_class=int(_get(cell, "images_per_class", cell_file)),
        split_seed=int(_get(cell, "split_seed", cell_file)),
        test_acc=float(_get(metrics, "test_acc", metrics_file)),
        val_acc=None if val_acc is None else float(val_acc),
        wall_time_s=float(_get(metrics, "wall_time_s", metrics_file)),
        config_hash=str(_get(cell, "config_hash", cell_file)),
        run_dir=cell_dir.relative_to(out_dir).as_posix(),
    )


def collect_results(out_dir: str | Path, expected_hashes: dict[str, str] | None = None) -> list[ResultRow]:
    """Every finished cell on disk under out_dir (so shards sharing it merge), sorted.

    expected_hashes maps run_dir -> the current config hash; a finished cell whose hash differs is
    stale (its config changed and it will be redone) and is left out. Cells not in the map are kept.
    """
    out_dir = Path(out_dir)
    expected_hashes = expected_hashes or {}
    rows = []
    for cell_file in sorted(out_dir.glob(f"*/n*/split*/{CELL_FILE}")):
        row = read_finished_cell(cell_file.parent, out_dir)
        if row is None:
            continue
        if row.run_dir in expected_hashes and expected_hashes[row.run_dir] != row.config_hash:
            continue
        rows.append(row)
    rows.sort(key=lambda r: (r.images_per_class, r.method, r.split_seed))
    return rows


def results_csv_text(rows: Sequence[ResultRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        writer.writerow(["" if getattr(row, c) is None else getattr(row, c) for c in RESULT_COLUMNS])
    return buffer.getvalue()


def write_results_csv(rows: Sequence[ResultRow], path: str | Path) -> Path:
    atomic_write_text(path, results_csv_text(rows))
    return Path(path)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also rejects NaN; summary.md and the report show fractions as %
        raise ValueError(text)
    return value


def _wall_time(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < math.inf:
        raise ValueError(text)
    return value


def _size(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _name(text: str) -> str:
    if not text:
        raise ValueError(text)
    return text


# column -> (parser, what is expected); empty val_acc means the run had no validation pool
_PARSERS = {
    "method": (_name, "a method name"),
    "images_per_class": (_size, "a positive integer"),
    "split_seed": (int, "an integer"),
    "test_acc": (_fraction, "a fraction in [0, 1]"),
    "val_acc": (lambda t: _fraction(t) if t else None, "a fraction in [0, 1] or empty"),
    "wall_time_s": (_wall_time, "a number of seconds >= 0"),
    "config_hash": (str, "text"),
    "run_dir": (str, "text"),
}


def read_results_csv(path: str | Path) -> list[ResultRow]:
    """The finished runs in a study's results.csv, in file order; rows with an empty test_acc are skipped.

    This is the one reader of results.csv: summary.md and the HTML report both go through it.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"results file {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in RESULT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"results file {path} lacks columns {missing}; expected {RESULT_COLUMNS}")
        rows = []
        for record in reader:
            line = reader.line_num  # the file's own line number, also past quoted newlines
            if not (record.get("test_acc") or "").strip():
                continue  # a run that has not finished yet
            values = {}
            for column, (parse, expected) in _PARSERS.items():
                text = (record.get(column) or "").strip()
                try:
                    values[column] = parse(text)
                except ValueError:
                    raise UserError(
                        f"results file {path}, line {line}: column {column!r} is {text!r}; expected {expected}"
                    ) from None
            rows.append(ResultRow(**values))
    return rows


# ------------------------------------------------------------------------------------------- stats


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); the std is None for fewer than two values."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def gain_with_se(a: Sequence[float], b: Sequence[float]) -> tuple[float, float | None]:
    """mean(a) - mean(b) and its standard error sqrt(sa²/na + sb²/nb) (None if a side has < 2 values)."""
    mean_a, std_a = mean_std(a)
    mean_b, std_b = mean_std(b)
    if std_a is None or std_b is None:
        return mean_a - mean_b, None
    return mean_a - mean_b, math.sqrt(std_a**2 / len(a) + std_b**2 / len(b))


@dataclass(frozen=True)
class SummaryRow:
    images_per_class: int
    method: str
    n: int
    test_mean: float  # fractions, as in results.csv
    test_std: float | None
    val_mean: float | None
    gain: float | None  # over its baseline (baseline_of) at the same size; None for `none` or without it
    gain_se: float | None
    wall_mean: float


def order_methods(methods: Iterable[str], preferred: Sequence[str] = ()) -> list[str]:
    """The methods present: the baseline first, then those in `preferred` in its order, then by name."""
    rank = {name: i for i, name in enumerate([BASELINE, *preferred])}
    return sorted(set(methods), key=lambda m: (rank.get(m, len(rank)), m))


def summarize(rows: Sequence[ResultRow], method_order: Sequence[str] = ()) -> list[SummaryRow]:
    """One row per (images per class, method): sizes ascending, methods as order_methods puts them."""
    rank = {name: i for i, name in enumerate(order_methods((r.method for r in rows), method_order))}
    groups: dict[tuple[int, str], list[ResultRow]] = {}
    for row in rows:
        groups.setdefault((row.images_per_class, row.method), []).append(row)
    ordered = sorted(groups, key=lambda k: (k[0], rank[k[1]]))
    methods = set(rank)
    summary = []
    for size, method in ordered:
        group = groups[(size, method)]
        tests = [r.test_acc for r in group]
        vals = [r.val_acc for r in group if r.val_acc is not None]
        test_mean, test_std = mean_std(tests)
        gain = gain_se = None
        baseline = groups.get((size, baseline_of(method, methods)))
        if method != BASELINE and baseline:
            gain, gain_se = gain_with_se(tests, [r.test_acc for r in baseline])
        summary.append(
            SummaryRow(
                images_per_class=size,
                method=method,
                n=len(group),
                test_mean=test_mean,
                test_std=test_std,
                val_mean=mean_std(vals)[0] if vals else None,
                gain=gain,
                gain_se=gain_se,
                wall_mean=mean_std([r.wall_time_s for r in group])[0],
            )
        )
    return summary


# ---------------------------------------------------------- cells (summary.md and the HTML report)


def percent(value: float | None) -> str:
    """A fraction as % with two decimals; '—' when there is no value."""
    if value is None:
        return "—"
    text = f"{100 * value:.2f}"
    return "0.00" if text == "-0.00" else text  # a float-noise gain of -1e-17 is no loss


def _pm(value: float | None, spread: float | None) -> str:
    if value is None:
        return "—"
    return f"{percent(value)} ± {'n/a' if spread is None else percent(spread)}"  # n/a: a single seed


SUMMARY_HEADER = ["method", "n", "test acc (%)", "val acc (%)", "gain (pp)", "wall time (s)"]
# What the columns mean: under the table in summary.md and in the HTML report alike.
SUMMARY_LEGEND = (
    "Test accuracy in %: mean ± sample std over split seeds (n runs; n/a: a single seed has no spread). "
    f"Gain: difference in mean test accuracy over {BASELINE} at the same size (over {BASELINE}-X for a "
    "method named …-X when the study has it: the same model from scratch), in percentage points, ± its "
    "standard error sqrt(sa²/na + sb²/nb). Val: mean accuracy on the fixed validation pool. "
    "Wall time: mean per run."
)


def summary_cells(s: SummaryRow) -> list[str]:
    """The row's cells under SUMMARY_HEADER; summary.md and the HTML report both show exactly these."""
    gain = _pm(s.gain, s.gain_se)
    gain = gain if gain.startswith(("-", "—")) else "+" + gain
    return [s.method, str(s.n), _pm(s.test_mean, s.test_std), percent(s.val_mean), gain, f"{s.wall_mean:.1f}"]


def summary_markdown(rows: Sequence[ResultRow], method_order: Sequence[str] = ()) -> str:
    lines = ["# Study summary", "", SUMMARY_LEGEND]
    if not rows:
        return "\n".join(lines + ["", "No finished runs yet.", ""])
    current = None
    for s in summarize(rows, method_order):
        if s.images_per_class != current:
            current = s.images_per_class
            lines += [
                "",
                f"## {current} images per class",
                "",
                "| " + " | ".join(SUMMARY_HEADER) + " |",
                "|---|" + "---:|" * (len(SUMMARY_HEADER) - 1),
            ]
        lines.append("| " + " | ".join(summary_cells(s)) + " |")
    return "\n".join(lines) + "\n"


def write_summary(rows: Sequence[ResultRow], path: str | Path, method_order: Sequence[str] = ()) -> Path:
    atomic_write_text(path, summary_markdown(rows, method_order))
    return Path(path)
