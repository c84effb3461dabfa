"""Small statistics for study tables: mean ± std, and a method's gain over its baseline, paired over
the split seeds both ran (or unpaired where they share none), with a 95 % confidence interval.

scipy is not a dependency, so the Student-t quantiles come from a table (two-sided 95 %, df 1..30,
as printed in every statistics textbook; tests/test_study_stats.py checks each entry by integrating
the t density); beyond 30 degrees of freedom the normal quantile 1.96 is used (t is within 2 % of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

# t_{0.975, df} for df = 1..30: the half-width of a two-sided 95 % interval in standard errors.
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)
Z_975 = 1.960


def t_quantile_975(df: float) -> float:
    """Two-sided 95 % Student-t quantile; a fractional df (Welch) is rounded down, which widens the interval."""
    if not df >= 1:
        raise ValueError(f"degrees of freedom {df!r}: expected >= 1")
    whole = int(math.floor(df))
    return T_975[whole - 1] if whole <= len(T_975) else Z_975


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); the std is None for fewer than two values."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@dataclass(frozen=True)
class Gain:
    """mean(method) - mean(baseline) as fractions, its standard error and 95 % interval (None with too
    few runs). paired: over the shared split seeds (`pairs` of them, `up` with a higher accuracy for the
    method); unpaired: over all runs of each side, because they share no split seed (up is None)."""

    mean: float
    se: float | None
    low: float | None
    high: float | None
    paired: bool
    pairs: int  # paired: shared splits; unpaired: 0
    up: int | None


def paired_gain(method: Mapping[int, float], baseline: Mapping[int, float]) -> Gain:
    """Gain over the splits both have (split seed -> accuracy): the mean of the per-split differences,
    their standard error sd/sqrt(n) and mean ± t_{n-1} se; unpaired (Welch) when no split is shared."""
    shared = sorted(set(method) & set(baseline))
    if not shared:
        return unpaired_gain(list(method.values()), list(baseline.values()))
    diffs = [method[s] - baseline[s] for s in shared]
    mean, sd = mean_std(diffs)
    up = sum(d > 0 for d in diffs)
    if sd is None:
        return Gain(mean, None, None, None, True, len(diffs), up)
    se = sd / math.sqrt(len(diffs))
    half = t_quantile_975(len(diffs) - 1) * se
    return Gain(mean, se, mean - half, mean + half, True, len(diffs), up)


def unpaired_gain(a: Sequence[float], b: Sequence[float]) -> Gain:
    """mean(a) - mean(b), se sqrt(sa²/na + sb²/nb), interval with Welch–Satterthwaite degrees of freedom."""
    mean_a, std_a = mean_std(a)
    mean_b, std_b = mean_std(b)
    mean = mean_a - mean_b
    if std_a is None or std_b is None:
        return Gain(mean, None, None, None, False, 0, None)
    va, vb = std_a**2 / len(a), std_b**2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Gain(mean, 0.0, mean, mean, False, 0, None)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile_975(df) * se
    return Gain(mean, se, mean - half, mean + half, False, 0, None)
