"""How many study workers make a small-data grid fastest on this machine: the same grid, timed per setting.

    FILTERPRIOR_DATA=../shared/data .venv/bin/python benchmarks/study_workers.py [--cells 4] [--epochs 60]

Runs one grid (CIFAR-10, 10 images a class, method `none`, `--cells` split seeds) with each setting
(workers x torch threads per worker, threads = cores / workers) into a fresh directory, and prints the
wall time of the whole grid and cells per hour. Every setting trains the same cells, so the times compare.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from filterprior.config import apply_overrides, load_config, packaged_config
from filterprior.study.execution import available_cpus
from filterprior.study.runner import run_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    cpus = available_cpus()
    base = apply_overrides(load_config(packaged_config("small-data.yaml")),
                           [f"epochs={args.epochs}", "filter_pictures=false"])
    settings = sorted({1, cpus} | ({cpus // 2} if cpus >= 4 else set()))
    print(f"{cpus} cores; grid: {args.cells} cells of filternet-s2, 10 images a class, {args.epochs} epochs")
    for workers in settings:
        threads = max(1, cpus // workers)
        cfg = apply_overrides(base, [f"threads={threads}"])
        out = Path(tempfile.mkdtemp(prefix="study-workers-"))
        start = time.perf_counter()
        run_study(cfg, out, sizes=[10], methods=["none"], split_seeds=list(range(args.cells)),
                  workers=workers, progress=False)
        seconds = time.perf_counter() - start
        shutil.rmtree(out)
        print(f"workers {workers} x threads {threads}: {seconds:6.1f} s for the grid, "
              f"{3600 * args.cells / seconds:6.0f} cells/hour")


if __name__ == "__main__":
    main()
