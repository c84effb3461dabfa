"""The table cells, legend and summary.md: the same cells the HTML report shows (summary_cells)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from filterprior.results.rows import ResultRow
from filterprior.results.summary import BASELINE, SummaryRow, mixed_recipes_note, summarize
from filterprior.utils import atomic_write_text


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


def summary_legend(metric: str = "test") -> str:
    """What the columns mean, under the table in summary.md and in the HTML report alike; for a summary of the
    validation pool only (metric "val") the accuracy and gain are the pool's and there is no separate val column."""
    what = "Pool accuracy" if metric == "val" else "Test accuracy"
    val_column = "" if metric == "val" else "Val: mean accuracy on the fixed validation pool. "
    return (
        f"{what} in %: mean ± sample std over split seeds (n runs; n/a: a single seed has no spread). "
        f"Gain: the method's {what.lower()} minus its baseline's ({BASELINE} at the same size, or for a method "
        f"named …-X the most specific {BASELINE}-X the study has, X one or more of its last words: the same model "
        "or recipe from scratch), in percentage points, "
        "paired over the k split seeds both ran: the mean of the per-split differences ± its standard error "
        "(their sd / √k). 95% CI: that mean ± t(0.975, k−1) × the standard error (Student t from a table for "
        "up to 30 degrees of freedom, the normal 1.96 beyond). Splits up: on how many of the k shared splits "
        "the method beat its baseline. Only where the two share no split seed is the gain unpaired (difference "
        "of means ± sqrt(sa²/na + sb²/nb), Welch's interval), marked 'unpaired'. "
        f"{val_column}Wall time: mean per run."
    )


SUMMARY_LEGEND = summary_legend()


# A summary of the validation pool only (study --hide-test): the accuracy column is the pool's, so no val column.
VAL_SUMMARY_HEADER = ["method", "n", "val acc (%)", "gain on val (pp)", "95% CI (pp)", "splits up", "wall time (s)"]
HIDDEN_TEST_NOTE = (
    "Test accuracy hidden (study --hide-test): every figure here is the validation pool's, the gains paired "
    "over split seeds as below but on the pool, for choosing a recipe without seeing the test set. Runs trained "
    "with --hide-test have not read the test set at all; once the choice is made, run the same study again "
    "without --hide-test: it tests each finished run from its weights (nothing retrains) and shows the test "
    "column."
)


def summary_header(metric: str = "test") -> list[str]:
    """The table's column names for a summary of `metric` (summarize's): test, or the validation pool only."""
    return VAL_SUMMARY_HEADER if metric == "val" else SUMMARY_HEADER


def summary_cells(s: SummaryRow) -> list[str]:
    """The row's cells under summary_header(s.metric); summary.md and the HTML report both show exactly these."""
    g = s.gain
    if g is None:
        gain = interval = up = "—"
    else:
        gain = f"{_signed(g.mean)} ± {'n/a' if g.se is None else percent(g.se)}"
        interval = "—" if g.low is None else f"[{_signed(g.low)}, {_signed(g.high)}]"
        up = f"{g.up}/{g.pairs}" if g.paired else "unpaired"
    val = [] if s.metric == "val" else [percent(s.val_mean)]  # a pool-only summary's accuracy is the pool's
    return [s.label or s.method, str(s.n), _pm(s.acc_mean, s.acc_std), *val, gain, interval, up,
            f"{s.wall_mean:.1f}"]


def summary_markdown(rows: Sequence[ResultRow], method_order: Sequence[str] = (), baseline: str | None = None,
                     metric: str = "test") -> str:
    """summary.md's text; `metric` "val": the validation pool's figures only, test accuracy nowhere."""
    lines = ["# Study summary", "", SUMMARY_LEGEND]
    if metric == "val":
        lines = ["# Study summary: validation pool only", "", HIDDEN_TEST_NOTE, "", summary_legend(metric)]
    if baseline:
        lines += ["", f"Every gain here is over `{baseline}` (not each method's own baseline)."]
    if not rows:
        return "\n".join(lines + ["", "No finished runs yet.", ""])
    summary = summarize(rows, method_order, baseline, metric)
    header = summary_header(metric)
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
                "| " + " | ".join(header) + " |",
                "|---|" + "---:|" * (len(header) - 1),
            ]
        lines.append("| " + " | ".join(summary_cells(s)) + " |")
    return "\n".join(lines) + "\n"


def write_summary(rows: Sequence[ResultRow], path: str | Path, method_order: Sequence[str] = (),
                  baseline: str | None = None, metric: str = "test") -> Path:
    atomic_write_text(path, summary_markdown(rows, method_order, baseline, metric))
    return Path(path)
