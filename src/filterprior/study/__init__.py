"""Studies: grids of runs (images per class x methods x split seeds), parallel, resumable, shardable."""

from filterprior.study.grid import DEFAULT_SIZES, DEFAULT_SPLIT_SEEDS, Cell, build_grid, cell_config, shard_cells
from filterprior.study.methods import Method, load_methods, select_methods
from filterprior.study.execution import default_workers
from filterprior.study.runner import StudyFailed, run_study
from filterprior.results import collect_results, read_results_csv, summary_markdown

__all__ = [
    "DEFAULT_SIZES",
    "DEFAULT_SPLIT_SEEDS",
    "Cell",
    "Method",
    "StudyFailed",
    "build_grid",
    "cell_config",
    "collect_results",
    "default_workers",
    "load_methods",
    "read_results_csv",
    "run_study",
    "select_methods",
    "shard_cells",
    "summary_markdown",
]
