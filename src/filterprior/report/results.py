"""A study's results.csv: reading it, and the table of mean ± std per method and size.

results.csv has one row per run: `method, images_per_class, split_seed, test_acc, val_acc, wall_time_s,
config_hash, run_dir`. Rows whose `test_acc` is empty (a run that has not finished) are skipped.
`images_per_class` may be empty, `all` or `None` for runs on the whole training set; it reads as None.

Spread is the sample standard deviation over split seeds (ddof=1; NaN for a single seed), and the gain
of a method over `none` at the same size has the standard error sqrt(sa²/na + sb²/nb) (Welch's, seeds
taken as independent draws).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from filterprior.errors import UserError

REQUIRED_COLUMNS = ("method", "images_per_class", "split_seed", "test_acc")
BASELINE = "none"


def _number(text: str | None, path: Path, line: int, column: str) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{path}, line {line}: column {column!r} is {text!r}, expected a number") from None


def _size(text: str | None, path: Path, line: int) -> int | None:
    if text is None or text.strip().lower() in ("", "all", "none"):
        return None
    try:
        return int(float(text))
    except ValueError:
        raise UserError(
            f"{path}, line {line}: column 'images_per_class' is {text!r}, expected an integer or 'all'"
        ) from None


def read_results(results_csv: str | os.PathLike) -> list[dict[str, Any]]:
    """Parsed rows of finished runs: numbers as floats/ints, `images_per_class` None for the whole set."""
    path = Path(results_csv)
    if not path.is_file():
        raise UserError(f"results file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(
                f"{path}: missing column(s) {', '.join(missing)}; expected at least {', '.join(REQUIRED_COLUMNS)}"
            )
        rows = []
        for line, raw in enumerate(reader, start=2):
            test_acc = _number(raw.get("test_acc"), path, line, "test_acc")
            if test_acc is None:
                continue
            seed = _number(raw.get("split_seed"), path, line, "split_seed")
            rows.append({
                "method": (raw.get("method") or "").strip(),
                "images_per_class": _size(raw.get("images_per_class"), path, line),
                "split_seed": None if seed is None else int(seed),
                "test_acc": test_acc,
                "val_acc": _number(raw.get("val_acc"), path, line, "val_acc"),
                "wall_time_s": _number(raw.get("wall_time_s"), path, line, "wall_time_s"),
                "config_hash": raw.get("config_hash") or "",
                "run_dir": (raw.get("run_dir") or "").strip(),
            })
    return rows


def size_key(size: int | None) -> float:
    """Sort key: the whole training set (None) after every subset size."""
    return math.inf if size is None else float(size)


def method_order(rows: list[dict[str, Any]]) -> list[str]:
    """`none` first, then the other methods in the order they first appear."""
    seen = list(dict.fromkeys(r["method"] for r in rows))
    return sorted(seen, key=lambda m: (m != BASELINE, seen.index(m)))


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else math.nan
    return float(array.mean()), std


def results_table(results_csv: str | os.PathLike) -> list[dict[str, Any]]:
    """One dict per (images_per_class, method), sorted by size then method (`none` first).

    Keys: method, images_per_class, n, test_acc_mean, test_acc_std, val_acc_mean, val_acc_std,
    wall_time_s_mean, gain (test_acc_mean minus `none`'s at the same size; None when there is no `none`
    there, and for `none` itself), gain_se (NaN when either side has a single seed).
    Accuracies are in the CSV's own unit.
    """
    rows = read_results(results_csv)
    groups: dict[tuple[int | None, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["images_per_class"], row["method"]), []).append(row)
    order = method_order(rows)
    table = []
    for size, method in sorted(groups, key=lambda k: (size_key(k[0]), order.index(k[1]))):
        members = groups[(size, method)]
        test_mean, test_std = _mean_std([r["test_acc"] for r in members])
        vals = [r["val_acc"] for r in members if r["val_acc"] is not None]
        val_mean, val_std = _mean_std(vals) if vals else (math.nan, math.nan)
        times = [r["wall_time_s"] for r in members if r["wall_time_s"] is not None]
        table.append({
            "method": method,
            "images_per_class": size,
            "n": len(members),
            "test_acc_mean": test_mean,
            "test_acc_std": test_std,
            "val_acc_mean": val_mean,
            "val_acc_std": val_std,
            "wall_time_s_mean": float(np.mean(times)) if times else math.nan,
            "gain": None,
            "gain_se": None,
        })
    baselines = {e["images_per_class"]: e for e in table if e["method"] == BASELINE}
    for entry in table:
        base = baselines.get(entry["images_per_class"])
        if base is None or entry["method"] == BASELINE:
            continue
        entry["gain"] = entry["test_acc_mean"] - base["test_acc_mean"]
        entry["gain_se"] = math.sqrt(
            entry["test_acc_std"] ** 2 / entry["n"] + base["test_acc_std"] ** 2 / base["n"]
        )
    return table


def accuracy_scale(values: list[float]) -> float:
    """100 when every accuracy is a fraction in [0, 1] (shown as %), else 1 (already in %)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return 100.0 if finite and max(abs(v) for v in finite) <= 1.0 else 1.0
