"""The study's tables: results.csv (one row per finished cell) and summary.md (mean ± std per method).

Accuracies in metrics.json and results.csv are fractions in [0, 1]; summary.md shows them in %.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

from filterprior.errors import UserError
from filterprior.utils import atomic_write_text

CELL_FILE = "cell.json"  # written by the runner before a cell trains: method, size, seed, config hash
METRICS_FILE = "metrics.json"  # written last by the engine: its presence means the run finished
BASELINE = "none"


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


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def _get(data: dict, key: str, path: Path):
    if key not in data:
        raise UserError(f"{path} has no key {key!r}")
    return data[key]


def read_finished_cell(cell_dir: Path, out_dir: Path) -> ResultRow | None:
    """The cell's result row, or None when it has not finished (no metrics.json or no cell.json)."""
    cell_file, metrics_file = cell_dir / CELL_FILE, cell_dir / METRICS_FILE
    if not (cell_file.is_file() and metrics_file.is_file()):
        return None
    cell, metrics = _read_json(cell_file), _read_json(metrics_file)
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


def read_results_csv(path: str | Path) -> list[ResultRow]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"results file {path} does not exist")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = sorted(set(RESULT_COLUMNS) - set(reader.fieldnames or []))
        if missing:
            raise UserError(f"results file {path} lacks columns {missing}; expected {RESULT_COLUMNS}")
        rows = []
        for line, record in enumerate(reader, start=2):
            try:
                rows.append(
                    ResultRow(
                        method=record["method"],
                        images_per_class=int(record["images_per_class"]),
                        split_seed=int(record["split_seed"]),
                        test_acc=float(record["test_acc"]),
                        val_acc=float(record["val_acc"]) if record["val_acc"] else None,
                        wall_time_s=float(record["wall_time_s"]),
                        config_hash=record["config_hash"],
                        run_dir=record["run_dir"],
                    )
                )
            except ValueError as exc:
                raise UserError(f"results file {path}, line {line}: {exc}") from exc
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
    gain: float | None  # over the 'none' baseline at the same size; None for the baseline or without it
    gain_se: float | None
    wall_mean: float


def summarize(rows: Sequence[ResultRow], method_order: Sequence[str] = ()) -> list[SummaryRow]:
    """One row per (images per class, method): sizes ascending, methods in method_order then by name."""
    rank = {name: i for i, name in enumerate(method_order)}
    groups: dict[tuple[int, str], list[ResultRow]] = {}
    for row in rows:
        groups.setdefault((row.images_per_class, row.method), []).append(row)
    ordered = sorted(groups, key=lambda k: (k[0], rank.get(k[1], len(rank)), k[1]))
    summary = []
    for size, method in ordered:
        group = groups[(size, method)]
        tests = [r.test_acc for r in group]
        vals = [r.val_acc for r in group if r.val_acc is not None]
        test_mean, test_std = mean_std(tests)
        gain = gain_se = None
        baseline = groups.get((size, BASELINE))
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


# ---------------------------------------------------------------------------------------- markdown


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _pm(value: float | None, spread: float | None) -> str:
    if value is None:
        return "—"
    return _pct(value) if spread is None else f"{_pct(value)} ± {_pct(spread)}"


def summary_markdown(rows: Sequence[ResultRow], method_order: Sequence[str] = ()) -> str:
    lines = [
        "# Study summary",
        "",
        "Test accuracy in %: mean ± sample std over split seeds (n runs). Gain: difference in mean test",
        f"accuracy over `{BASELINE}` at the same size, in percentage points, ± its standard error",
        "sqrt(sa²/na + sb²/nb). Val: mean accuracy on the fixed validation pool. Wall time per run.",
    ]
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
                f"| method | n | test acc (%) | val acc (%) | gain over {BASELINE} (pp) | wall time (s) |",
                "|---|---:|---:|---:|---:|---:|",
            ]
        gain = "—" if s.gain is None else ("+" if s.gain >= 0 else "") + _pm(s.gain, s.gain_se)
        lines.append(
            f"| {s.method} | {s.n} | {_pm(s.test_mean, s.test_std)} | {_pct(s.val_mean)} | {gain} "
            f"| {s.wall_mean:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(rows: Sequence[ResultRow], path: str | Path, method_order: Sequence[str] = ()) -> Path:
    atomic_write_text(path, summary_markdown(rows, method_order))
    return Path(path)
