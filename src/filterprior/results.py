"""A study's results: results.csv (one row per finished cell) and summary.md (mean ± std per method).

The one source of results.csv's reading, statistics and cell formatting: the study writes them, and the
HTML report (filterprior.report.html) and the accuracy plot (filterprior.figures.plots) read them with
read_results_csv, summarize and summary_cells, so they always show the same numbers as summary.md.
Accuracies in metrics.json and results.csv are fractions in [0, 1]; the tables show them in %.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

from filterprior.errors import UserError
from filterprior.stats import Gain, mean_std, paired_gain, unpaired_gain
from filterprior.utils import atomic_write_text, read_json

CELL_FILE = "cell.json"  # written by the runner before a cell trains: method, size, seed, config hash
METRICS_FILE = "metrics.json"  # written last by the engine: its presence means the run finished
BASELINE = "none"


def baseline_of(method: str, methods: Iterable[str]) -> str:
    """The method `method`'s gain is measured against: the most specific `none-X` the study has for a
    method named `…-X` (X one or more dash-separated words, longest first), else `none`.

    So finetune-airnet gains over none-airnet (the same model from scratch), l2sp-strong-airnet over
    none-strong-airnet (the tuned recipe from scratch) or, without it, none-airnet; and a baseline
    none-strong-airnet itself gains over none-airnet.
    """
    present = set(methods)
    words = method.split("-")
    first = 2 if words[0] == BASELINE else 1  # none-X-Y: not its own baseline; try none-Y, then none
    for i in range(first, len(words)):
        own = f"{BASELINE}-{'-'.join(words[i:])}"
        if own in present:
            return own
    return BASELINE


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
    # The config without its split seed (grid.recipe_hash): runs are averaged only when it is equal.
    # Empty in results.csv files written before it existed.
    recipe_hash: str = ""


RESULT_COLUMNS = [f.name for f in fields(ResultRow)]
OPTIONAL_COLUMNS = ("recipe_hash",)  # results.csv files of older versions lack it


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
        recipe_hash=str(cell.get("recipe_hash") or _recipe_from_record(cell)),
    )


def _recipe_from_record(cell: dict) -> str:
    """For a cell.json written before recipe_hash was recorded: a hash of its recorded config with the
    split seed taken out as grid.recipe_config does (no bank content, so prefixed: it never equals a
    recorded recipe hash, and such cells are shown apart from newer ones rather than averaged with them)."""
    config = cell.get("config")
    if not isinstance(config, dict):
        return ""
    config = json.loads(json.dumps(config))  # a deep copy
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    split = data.get("split_seed") if isinstance(data.get("split_seed"), int) else 0
    data["split_seed"] = 0
    if isinstance(config.get("seed"), int):
        config["seed"] -= split
    config.pop("threads", None)
    config.pop("progress", None)
    blob = json.dumps(config, sort_keys=True).encode()
    return "c" + hashlib.sha256(blob).hexdigest()[:11]


def collect_results(
    out_dir: str | Path, expected_hashes: dict[str, str | tuple[str, ...]] | None = None
) -> list[ResultRow]:
    """Every finished cell on disk under out_dir (so shards sharing it merge), sorted.

    expected_hashes maps run_dir -> the current config hash (or the hashes that count as it: today's and
    the legacy one); a finished cell whose hash differs is stale (its config changed and it will be
    redone) and is left out. Cells not in the map are kept.
    """
    out_dir = Path(out_dir)
    expected_hashes = expected_hashes or {}
    rows = []
    for cell_file in sorted(out_dir.glob(f"*/n*/split*/{CELL_FILE}")):
        row = read_finished_cell(cell_file.parent, out_dir)
        if row is None:
            continue
        accepted = expected_hashes.get(row.run_dir)
        if accepted is not None and row.config_hash not in ((accepted,) if isinstance(accepted, str) else accepted):
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
    "recipe_hash": (str, "text"),
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
        missing = [c for c in RESULT_COLUMNS if c not in (reader.fieldnames or []) and c not in OPTIONAL_COLUMNS]
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


def gain_with_se(a: Sequence[float], b: Sequence[float]) -> tuple[float, float | None]:
    """mean(a) - mean(b) and its unpaired standard error sqrt(sa²/na + sb²/nb) (None if a side has < 2 values)."""
    gain = unpaired_gain(a, b)
    return gain.mean, gain.se


@dataclass(frozen=True)
class SummaryRow:
    images_per_class: int
    method: str
    n: int
    test_mean: float  # fractions, as in results.csv
    test_std: float | None
    val_mean: float | None
    gain: Gain | None  # over its baseline (baseline_of) at the same size; None for `none` or without it
    wall_mean: float
    recipe: str = ""  # the runs' recipe hash (all equal: runs of different configs are never averaged)
    label: str = ""  # the method's name, with its recipe hash when the method has several at this size

    @property
    def gain_se(self) -> float | None:
        return None if self.gain is None else self.gain.se


def order_methods(methods: Iterable[str], preferred: Sequence[str] = ()) -> list[str]:
    """The methods present: the baseline first, then those in `preferred` in its order, then by name."""
    rank = {name: i for i, name in enumerate([BASELINE, *preferred])}
    return sorted(set(methods), key=lambda m: (rank.get(m, len(rank)), m))


def summarize(rows: Sequence[ResultRow], method_order: Sequence[str] = (), baseline: str | None = None) -> list[SummaryRow]:
    """One row per (images per class, method, recipe): sizes ascending, methods as order_methods puts them.

    Runs whose configs differ (another recipe hash) are never averaged: a method with runs of several
    configs at one size gets one row per config, labelled with its recipe hash, and a method whose
    baseline has several configs at that size gets no gain (which baseline would it be?). `baseline`: one
    method every other one gains over, instead of each method's own (baseline_of).
    """
    rank = {name: i for i, name in enumerate(order_methods((r.method for r in rows), method_order))}
    groups: dict[tuple[int, str, str], list[ResultRow]] = {}
    for row in rows:
        groups.setdefault((row.images_per_class, row.method, row.recipe_hash), []).append(row)
    recipes: dict[tuple[int, str], list[str]] = {}
    for size, method, recipe in sorted(groups):
        recipes.setdefault((size, method), []).append(recipe)
    for (size, method, recipe), group in groups.items():
        _check_one_run_per_split(size, method, group)
    ordered = sorted(groups, key=lambda k: (k[0], rank[k[1]], k[2]))
    methods = set(rank)
    summary = []
    for size, method, recipe in ordered:
        group = groups[(size, method, recipe)]
        tests = [r.test_acc for r in group]
        vals = [r.val_acc for r in group if r.val_acc is not None]
        test_mean, test_std = mean_std(tests)
        gain = None
        base_name = baseline or baseline_of(method, methods)
        base_recipes = recipes.get((size, base_name), [])
        if method != base_name and (baseline or method != BASELINE) and len(base_recipes) == 1:
            base = groups[(size, base_name, base_recipes[0])]
            gain = paired_gain({r.split_seed: r.test_acc for r in group}, {r.split_seed: r.test_acc for r in base})
        several = len(recipes[(size, method)]) > 1
        summary.append(
            SummaryRow(
                images_per_class=size,
                method=method,
                n=len(group),
                test_mean=test_mean,
                test_std=test_std,
                val_mean=mean_std(vals)[0] if vals else None,
                gain=gain,
                wall_mean=mean_std([r.wall_time_s for r in group])[0],
                recipe=recipe,
                label=f"{method} [{recipe or 'no recipe hash'}]" if several else method,
            )
        )
    return summary


def _check_one_run_per_split(size: int, method: str, group: Sequence[ResultRow]) -> None:
    seen: dict[int, str] = {}
    for row in group:
        if row.split_seed in seen:
            raise UserError(
                f"the results list {method} at {size} images per class, split seed {row.split_seed} twice "
                f"with the same config ({seen[row.split_seed]} and {row.run_dir}); expected one run per split"
            )
        seen[row.split_seed] = row.run_dir


def mixed_recipes_note(summary: Sequence[SummaryRow]) -> str | None:
    """A sentence naming the methods shown apart because their runs have different configs, or None."""
    split = sorted({(s.images_per_class, s.method) for s in summary if s.label != s.method})
    if not split:
        return None
    listed = "; ".join(f"{method} at {size} images per class" for size, method in split)
    return (
        f"Runs of different configs are never averaged. Runs of more than one config, shown as one row per "
        f"config with its recipe hash (in cell.json and results.csv; each run's config.yaml has the config): "
        f"{listed}. A gain is left out where the baseline itself has several configs. Rerun the changed "
        "cells with --overwrite to bring them to one config."
    )


# ---------------------------------------------------------- cells (summary.md and the HTML report)


def percent(value: float | None) -> str:
    """A fraction as % with two decimals; '—' when there is no value."""
    if value is None:
        return "—"
    text = f"{100 * value:.2f}"
    return "0.00" if text == "-0.00" else text  # a float-noise gain of -1e-17 is no loss


def _signed(value: float) -> str:
    text = percent(value)
    return text if text.startswith("-") or text == "0.00" else "+" + text


def _pm(value: float | None, spread: float | None) -> str:
    if value is None:
        return "—"
    return f"{percent(value)} ± {'n/a' if spread is None else percent(spread)}"  # n/a: a single seed


SUMMARY_HEADER = ["method", "n", "test acc (%)", "val acc (%)", "gain (pp)", "95% CI (pp)", "splits up",
                  "wall time (s)"]
# What the columns mean: under the table in summary.md and in the HTML report alike.
SUMMARY_LEGEND = (
    "Test accuracy in %: mean ± sample std over split seeds (n runs; n/a: a single seed has no spread). "
    f"Gain: the method's test accuracy minus its baseline's ({BASELINE} at the same size, or for a method "
    f"named …-X the most specific {BASELINE}-X the study has, X one or more of its last words: the same model "
    "or recipe from scratch), in percentage points, "
    "paired over the k split seeds both ran: the mean of the per-split differences ± its standard error "
    "(their sd / √k). 95% CI: that mean ± t(0.975, k−1) × the standard error (Student t from a table for "
    "up to 30 degrees of freedom, the normal 1.96 beyond). Splits up: on how many of the k shared splits "
    "the method beat its baseline. Only where the two share no split seed is the gain unpaired (difference "
    "of means ± sqrt(sa²/na + sb²/nb), Welch's interval), marked 'unpaired'. Val: mean accuracy on the "
    "fixed validation pool. Wall time: mean per run."
)


def summary_cells(s: SummaryRow) -> list[str]:
    """The row's cells under SUMMARY_HEADER; summary.md and the HTML report both show exactly these."""
    g = s.gain
    if g is None:
        gain = interval = up = "—"
    else:
        gain = f"{_signed(g.mean)} ± {'n/a' if g.se is None else percent(g.se)}"
        interval = "—" if g.low is None else f"[{_signed(g.low)}, {_signed(g.high)}]"
        up = f"{g.up}/{g.pairs}" if g.paired else "unpaired"
    return [s.label or s.method, str(s.n), _pm(s.test_mean, s.test_std), percent(s.val_mean), gain, interval,
            up, f"{s.wall_mean:.1f}"]


def summary_markdown(rows: Sequence[ResultRow], method_order: Sequence[str] = (), baseline: str | None = None) -> str:
    lines = ["# Study summary", "", SUMMARY_LEGEND]
    if baseline:
        lines += ["", f"Every gain here is over `{baseline}` (not each method's own baseline)."]
    if not rows:
        return "\n".join(lines + ["", "No finished runs yet.", ""])
    summary = summarize(rows, method_order, baseline)
    note = mixed_recipes_note(summary)
    if note:
        lines += ["", note]
    current = None
    for s in summary:
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


def write_summary(rows: Sequence[ResultRow], path: str | Path, method_order: Sequence[str] = (),
                  baseline: str | None = None) -> Path:
    atomic_write_text(path, summary_markdown(rows, method_order, baseline))
    return Path(path)
