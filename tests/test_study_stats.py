"""Paired statistics of a study's gains (issue 11 part 5): hand-made results.csv rows whose answer is
worked out here by hand, the t table checked against the t density, runs of different configs never
averaged, and the same figures in summary.md and the HTML report."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from filterprior.stats import T_975, paired_gain, t_quantile_975, unpaired_gain
from filterprior.results import (
    ResultRow,
    read_results_csv,
    summarize,
    summary_markdown,
    write_results_csv,
    write_summary,
)

BASE = [0.40, 0.42, 0.44, 0.41, 0.43]
METHOD = [0.45, 0.44, 0.50, 0.40, 0.48]  # per split: +5, +2, +6, -1, +5 points


def rows(method: str, accs, size: int = 10, seeds=None, recipe: str = "r1") -> list[ResultRow]:
    seeds = range(len(accs)) if seeds is None else seeds
    return [ResultRow(method, size, s, a, None, 1.0, f"h{s}", f"{method}/n{size}/split{s}", recipe)
            for s, a in zip(seeds, accs)]


def _t_cdf(q: float, df: int) -> float:
    """P(T <= q) by Simpson's rule on the Student-t density (independent of the table it checks)."""
    xs = np.linspace(0.0, q, 40001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(log_c) * (1 + xs**2 / df) ** (-(df + 1) / 2)
    h = xs[1] - xs[0]
    integral = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
    return 0.5 + integral


@pytest.mark.parametrize("df", range(1, 31))
def test_t_table_entries_are_the_975_quantiles(df):
    # Each entry is the true quantile rounded to 3 decimals: the quantile lies within half a unit of it.
    q = T_975[df - 1]
    assert _t_cdf(q - 0.0005, df) < 0.975 < _t_cdf(q + 0.0005, df)


def test_t_quantile_beyond_the_table_is_normal_and_fractional_df_rounds_down():
    assert t_quantile_975(31) == t_quantile_975(1000) == 1.96
    assert t_quantile_975(4.7) == T_975[3]  # Welch's df 4.7 -> 4: the wider interval
    with pytest.raises(ValueError):
        t_quantile_975(0.5)


def test_paired_gain_of_five_splits_worked_by_hand():
    diffs = [m - b for m, b in zip(METHOD, BASE)]
    mean = sum(diffs) / 5  # 0.034
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4)  # 0.0288097
    se = sd / math.sqrt(5)
    gain = paired_gain(dict(enumerate(METHOD)), dict(enumerate(BASE)))
    assert gain.paired and gain.pairs == 5 and gain.up == 4
    assert gain.mean == pytest.approx(0.034) and gain.se == pytest.approx(se) and se == pytest.approx(0.012884, abs=1e-6)
    assert (gain.low, gain.high) == (pytest.approx(0.034 - 2.776 * se), pytest.approx(0.034 + 2.776 * se))
    # The unpaired figure over the same runs is wider: the split-to-split spread is shared by both sides.
    assert unpaired_gain(METHOD, BASE).se > 1.3 * gain.se


def test_pairs_only_the_shared_splits_and_unpaired_where_none_is_shared():
    gain = paired_gain({0: 0.50, 1: 0.52, 2: 0.60}, {1: 0.40, 2: 0.45, 3: 0.90})
    assert (gain.pairs, gain.up) == (2, 2) and gain.mean == pytest.approx((0.12 + 0.15) / 2)
    assert gain.se == pytest.approx(0.015) and gain.high - gain.mean == pytest.approx(12.706 * 0.015)

    apart = paired_gain({5: 0.50, 6: 0.54}, {0: 0.40, 1: 0.42, 2: 0.44})
    sa2, sb2 = 0.0008 / 2, 0.0004 / 3  # sample variances over n
    welch_df = (sa2 + sb2) ** 2 / (sa2**2 / 1 + sb2**2 / 2)  # 1.6 -> t of df 1
    assert not apart.paired and apart.up is None and apart.mean == pytest.approx(0.10)
    assert apart.se == pytest.approx(math.sqrt(sa2 + sb2)) and int(welch_df) == 1
    assert apart.high - apart.mean == pytest.approx(12.706 * apart.se)


def test_summary_md_shows_paired_gain_interval_and_splits_up(tmp_path):
    path = write_results_csv(rows("none", BASE) + rows("gaussian", METHOD) + rows("l2", [0.5, 0.6], seeds=[7, 8]),
                             tmp_path / "results.csv")
    read = read_results_csv(path)
    text = summary_markdown(read)
    half = 2.776 * math.sqrt(0.00083 / 5)
    low, high = 100 * (0.034 - half), 100 * (0.034 + half)
    assert f"| gaussian | 5 | 45.40 ± 3.85 | — | +3.40 ± 1.29 | [{low:.2f}, +{high:.2f}] | 4/5 | 1.0 |" in text
    assert low < 0 < high  # an interval that covers 0: 4 of 5 splits up is not yet a sure gain
    l2 = next(s for s in summarize(read) if s.method == "l2")
    assert "| l2 | 2 |" in text and "| unpaired |" in text and not l2.gain.paired  # splits 7, 8: none shared
    assert "marked 'unpaired'" in text  # the legend says what that means


def test_runs_of_different_configs_are_shown_apart_never_averaged(tmp_path):
    mixed = rows("none", BASE) + rows("gaussian", [0.45, 0.44, 0.50], recipe="aaa") \
        + rows("gaussian", [0.40, 0.48], seeds=[3, 4], recipe="bbb")
    summary = summarize(mixed)
    gaussian = [s for s in summary if s.method == "gaussian"]
    assert [(s.label, s.n) for s in gaussian] == [("gaussian [aaa]", 3), ("gaussian [bbb]", 2)]
    assert gaussian[0].acc_mean == pytest.approx(np.mean([0.45, 0.44, 0.50]))
    assert gaussian[1].gain.mean == pytest.approx((-0.01 + 0.05) / 2)  # paired over splits 3, 4 only
    text = summary_markdown(mixed)
    assert "Runs of different configs are never averaged." in text and "config): gaussian at 10 images per class." in text
    # A baseline with two configs: no gain at all rather than one over a mix.
    two_baselines = rows("none", BASE[:2], recipe="x") + rows("none", BASE[2:], seeds=[2, 3, 4], recipe="y") \
        + rows("gaussian", METHOD)
    assert next(s for s in summarize(two_baselines) if s.method == "gaussian").gain is None


def test_a_split_listed_twice_for_one_config_is_an_error(tmp_path):
    from filterprior.errors import UserError

    doubled = rows("none", BASE) + rows("none", [0.5], seeds=[2])
    with pytest.raises(UserError, match=r"none at 10 images per class, split seed 2 twice"):
        summarize(doubled)


def test_old_results_csv_without_recipe_column_still_reads(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("method,images_per_class,split_seed,test_acc,val_acc,wall_time_s,config_hash,run_dir\n"
                    "none,10,0,0.4,0.5,1.0,h,none/n10/split0\nl2,10,0,0.45,0.5,1.0,h,l2/n10/split0\n")
    read = read_results_csv(path)
    assert [r.recipe_hash for r in read] == ["", ""]
    assert summarize(read)[1].gain.mean == pytest.approx(0.05)


def test_html_report_shows_the_paired_columns(tmp_path):
    from filterprior.report.html import build_report

    root = tmp_path / "study"
    root.mkdir()
    read = read_results_csv(write_results_csv(rows("none", BASE) + rows("gaussian", METHOD), root / "results.csv"))
    write_summary(read, root / "summary.md")
    text = build_report(root, tmp_path / "report.html").read_text()
    header = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", text)
    assert header[:9] == ["images/class", "method", "n", "test acc (%)", "val acc (%)", "gain (pp)",
                          "95% CI (pp)", "splits up", "wall time (s)"]
    assert "+3.40 ± 1.29" in text and "4/5" in text and "t(0.975, k−1)" in text


def test_a_pool_only_summary_pairs_the_validation_accuracy_and_shows_no_test_figure():
    # Test and pool move differently here, so a figure read off the wrong column shows.
    base_val, method_val = [0.30, 0.33, 0.35], [0.36, 0.32, 0.39]  # per split: +6, -1, +4 points on the pool
    base = [ResultRow("none", 10, s, t, v, 1.0, f"h{s}", f"none/n10/split{s}", "r1")
            for s, (t, v) in enumerate(zip(BASE, base_val))]
    method = [ResultRow("gaussian", 10, s, t, v, 1.0, f"h{s}", f"gaussian/n10/split{s}", "r1")
              for s, (t, v) in enumerate(zip(METHOD, method_val))]
    no_pool = [ResultRow("l2", 10, 0, 0.47, None, 1.0, "h", "l2/n10/split0", "r1")]
    summary = summarize(base + method + no_pool, metric="val")
    assert [s.method for s in summary] == ["none", "gaussian"]  # a run without a pool accuracy is left out
    gaussian = summary[1]
    assert gaussian.acc_mean == pytest.approx(np.mean(method_val)) and gaussian.metric == "val"
    assert gaussian.gain.mean == pytest.approx(0.03) and gaussian.gain.up == 2  # (6 - 1 + 4) / 3 points
    text = summary_markdown(base + method + no_pool, metric="val")
    assert "validation pool only" in text and "| val acc (%) | gain on val (pp) |" in text
    assert "Pool accuracy in %" in text and "Test accuracy in %" not in text  # the legend speaks of the pool
    assert f"| gaussian | 3 | {100 * np.mean(method_val):.2f} ± " in text
    for row in base + method + no_pool:  # no test accuracy, nor a mean or gain of test accuracies
        assert f"{100 * row.test_acc:.2f}" not in text
    assert f"{100 * np.mean(METHOD[:3]):.2f}" not in text and "test acc (%)" not in text
    with pytest.raises(ValueError, match="metric 'train'"):
        summarize(base, metric="train")
