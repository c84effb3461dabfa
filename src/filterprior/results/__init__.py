"""A study's results: results.csv (one row per finished cell) and summary.md (mean ± std per method).

The one source of results.csv's reading, statistics and cell formatting: the study writes them, and the
HTML report (filterprior.report.html) and the accuracy plot (filterprior.figures.plots) read them with
read_results_csv, summarize and summary_cells, so they always show the same numbers as summary.md.
Accuracies in metrics.json and results.csv are fractions in [0, 1]; the tables show them in %.

One job a module: `rows` (results.csv and the finished cells it lists), `summary` (means, baselines and
paired gains) and `markdown` (the table cells and summary.md). `from filterprior.results import X`
reaches everything public.
"""

from filterprior.results.markdown import (
    HIDDEN_TEST_NOTE,
    SUMMARY_HEADER,
    SUMMARY_LEGEND,
    percent,
    summary_cells,
    summary_header,
    summary_legend,
    summary_markdown,
    write_summary,
)
from filterprior.results.rows import (
    CELL_FILE,
    METRICS_FILE,
    OPTIONAL_COLUMNS,
    RESULT_COLUMNS,
    ResultRow,
    collect_results,
    read_finished_cell,
    read_results_csv,
    results_csv_text,
    write_results_csv,
)
from filterprior.results.summary import (
    BASELINE,
    METRICS,
    SummaryRow,
    baseline_of,
    gain_with_se,
    mixed_recipes_note,
    order_methods,
    summarize,
)
from filterprior.stats import mean_std  # re-exported: callers took it from here

__all__ = [
    "BASELINE", "CELL_FILE", "HIDDEN_TEST_NOTE", "METRICS", "METRICS_FILE", "OPTIONAL_COLUMNS", "RESULT_COLUMNS", "SUMMARY_HEADER", "SUMMARY_LEGEND",
    "ResultRow", "SummaryRow", "baseline_of", "collect_results", "gain_with_se", "mean_std", "mixed_recipes_note",
    "order_methods", "percent", "read_finished_cell", "read_results_csv", "results_csv_text", "summarize",
    "summary_cells", "summary_header", "summary_legend", "summary_markdown", "write_results_csv", "write_summary",
]
