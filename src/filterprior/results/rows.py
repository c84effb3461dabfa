"""results.csv: one row per finished study cell, read from the cells on disk, written and read back."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

from filterprior.errors import UserError
from filterprior.utils import atomic_write_text, read_json

CELL_FILE = "cell.json"  # written by the runner before a cell trains: method, size, seed, config hash
METRICS_FILE = "metrics.json"  # written last by the engine: its presence means the run finished


@dataclass(frozen=True)
class ResultRow:
    method: str
    images_per_class: int
    split_seed: int
    test_acc: float | None  # None: trained without its test read (`test: false`, study --hide-test)
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
    val_acc, test_acc = metrics.get("val_acc"), _get(metrics, "test_acc", metrics_file)
    return ResultRow(
        method=str(_get(cell, "method", cell_file)),
        images_per_class=int(_get(cell, "images_per_class", cell_file)),
        split_seed=int(_get(cell, "split_seed", cell_file)),
        test_acc=None if test_acc is None else float(test_acc),
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
    "test_acc": (lambda t: _fraction(t) if t else None, "a fraction in [0, 1] or empty"),
    "val_acc": (lambda t: _fraction(t) if t else None, "a fraction in [0, 1] or empty"),
    "wall_time_s": (_wall_time, "a number of seconds >= 0"),
    "config_hash": (str, "text"),
    "run_dir": (str, "text"),
    "recipe_hash": (str, "text"),
}


def read_results_csv(path: str | Path) -> list[ResultRow]:
    """The finished runs in a study's results.csv, in file order. A row with neither a test nor a validation
    accuracy is skipped; one with only the latter is a run trained without its test read (--hide-test).

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
            if not ((record.get("test_acc") or "").strip() or (record.get("val_acc") or "").strip()):
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
