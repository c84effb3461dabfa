"""The statistics of summary.md and the report: one row per (size, method, recipe), each method's gain over
its baseline (paired over split seeds where both ran)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from filterprior.errors import UserError
from filterprior.results.rows import ResultRow
from filterprior.stats import Gain, mean_std, paired_gain, unpaired_gain

BASELINE = "none"
# What a summary averages and pairs: the test set, or the validation pool for a study that tunes and must
# not show test accuracy (`filterprior study --hide-test`).
METRICS = ("test", "val")


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



def gain_with_se(a: Sequence[float], b: Sequence[float]) -> tuple[float, float | None]:
    """mean(a) - mean(b) and its unpaired standard error sqrt(sa²/na + sb²/nb) (None if a side has < 2 values)."""
    gain = unpaired_gain(a, b)
    return gain.mean, gain.se


@dataclass(frozen=True)
class SummaryRow:
    images_per_class: int
    method: str
    n: int
    acc_mean: float  # accuracy on `metric`'s set (test unless summarize was asked for val), fractions as in results.csv
    acc_std: float | None
    val_mean: float | None
    gain: Gain | None  # over its baseline (baseline_of) at the same size, on `metric`; None for `none` or without it
    wall_mean: float
    recipe: str = ""  # the runs' recipe hash (all equal: runs of different configs are never averaged)
    label: str = ""  # the method's name, with its recipe hash when the method has several at this size
    metric: str = "test"  # which set acc_mean and gain read: "test", or "val" (the validation pool)

    @property
    def gain_se(self) -> float | None:
        return None if self.gain is None else self.gain.se


def order_methods(methods: Iterable[str], preferred: Sequence[str] = ()) -> list[str]:
    """The methods present: the baseline first, then those in `preferred` in its order, then by name."""
    rank = {name: i for i, name in enumerate([BASELINE, *preferred])}
    return sorted(set(methods), key=lambda m: (rank.get(m, len(rank)), m))


def summarize(rows: Sequence[ResultRow], method_order: Sequence[str] = (), baseline: str | None = None,
              metric: str = "test") -> list[SummaryRow]:
    """One row per (images per class, method, recipe): sizes ascending, methods as order_methods puts them.

    Runs whose configs differ (another recipe hash) are never averaged: a method with runs of several
    configs at one size gets one row per config, labelled with its recipe hash, and a method whose
    baseline has several configs at that size gets no gain (which baseline would it be?). `baseline`: one
    method every other one gains over, instead of each method's own (baseline_of). `metric` "val": means,
    spreads and paired gains of the validation pool's accuracy instead of the test set's (for tuning, where
    test must stay unseen). Runs without the chosen set's accuracy (no pool; or trained without their test
    read, by study --hide-test) are left out.
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
    rows = [r for r in rows if (r.test_acc if metric == "test" else r.val_acc) is not None]

    def acc(row: ResultRow) -> float:
        return row.test_acc if metric == "test" else row.val_acc
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
        vals = [r.val_acc for r in group if r.val_acc is not None]
        acc_mean, acc_std = mean_std([acc(r) for r in group])
        gain = None
        base_name = baseline or baseline_of(method, methods)
        base_recipes = recipes.get((size, base_name), [])
        if method != base_name and (baseline or method != BASELINE) and len(base_recipes) == 1:
            base = groups[(size, base_name, base_recipes[0])]
            gain = paired_gain({r.split_seed: acc(r) for r in group}, {r.split_seed: acc(r) for r in base})
        several = len(recipes[(size, method)]) > 1
        summary.append(
            SummaryRow(
                images_per_class=size,
                method=method,
                n=len(group),
                acc_mean=acc_mean,
                acc_std=acc_std,
                val_mean=mean_std(vals)[0] if vals else None,
                gain=gain,
                wall_mean=mean_std([r.wall_time_s for r in group])[0],
                recipe=recipe,
                label=f"{method} [{recipe or 'no recipe hash'}]" if several else method,
                metric=metric,
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
