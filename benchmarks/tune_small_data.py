"""Tune the small-data recipe on the validation pool only; the test set is never evaluated here.

    FILTERPRIOR_DATA=../shared/data .venv/bin/python benchmarks/tune_small_data.py \
        --candidate "base:" --candidate "lr0.1:optim.lr=0.1" [--split-seeds 0,1] [--base CONFIG]

Each candidate is `name:key=value,key=value` applied on top of the base config (default: the packaged
small-data recipe). Every candidate runs on the same split seeds with `test=false`; the table gives the
mean ± std of validation-pool accuracy (CIFAR-10: 5,000 training images that no subset uses). Rows are
appended to benchmarks/results/tuning.csv with the date, so earlier sweeps stay on record.

A sweep resumes: a (tag, candidate, overrides, split seed) already in the results file is not trained
again (its recorded accuracy is used; --redo trains it anew and appends another row), and a run killed
midway continues from its last checkpoint in --runs.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import time
from pathlib import Path

from filterprior.config import apply_overrides, load_config, packaged_config
from filterprior.train import train
from filterprior.utils import atomic_path

RESULTS = Path(__file__).parent / "results" / "tuning.csv"
COLUMNS = ["date", "tag", "candidate", "overrides", "split_seed", "val_acc", "wall_time_s"]


def parse_candidate(text: str) -> tuple[str, list[str]]:
    name, _, rest = text.partition(":")
    return name, [item for item in re.split(r",(?![^\[]*\])", rest) if item]  # not inside [..]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", action="append", required=True, help="name:key=value,key=value")
    parser.add_argument("--split-seeds", default="0,1")
    parser.add_argument("--base", default=str(packaged_config("small-data.yaml")))
    parser.add_argument("--runs", default="runs/tuning", help="where the tuning runs go")
    parser.add_argument("--tag", default="", help="a word saved with the rows (which sweep)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--results", default=str(RESULTS), help="the CSV the rows are appended to")
    parser.add_argument("--redo", action="store_true", help="train rows the results file already has again")
    args = parser.parse_args()
    base = load_config(args.base)
    seeds = [int(s) for s in args.split_seeds.split(",")]
    results = Path(args.results)
    create_with_header(results)
    done = {} if args.redo else recorded(results)
    with results.open("a", newline="") as handle:
        writer = csv.writer(handle)
        for text in args.candidate:
            name, overrides = parse_candidate(text)
            accs = []
            for seed in seeds:
                cfg = apply_overrides(base, overrides + [f"data.split_seed={seed}", f"seed={seed}", "test=false",
                                                         "filter_pictures=false", "progress=false",
                                                         f"threads={args.threads}"])
                key = (args.tag, name, " ".join(overrides), str(seed))  # as a row of the results file
                if key in done:  # trained by an earlier call of this sweep
                    metrics = done[key]
                    print(f"{name} split {seed}: recorded, val {100 * metrics['val_acc']:.2f}", flush=True)
                else:
                    run_dir = Path(args.runs) / f"{args.tag or 'sweep'}-{name}-split{seed}"
                    metrics = train(cfg, run_dir, resume=True, quiet=True)  # a killed run continues
                    writer.writerow([time.strftime("%Y-%m-%d"), *key[:3], seed,
                                     f"{metrics['val_acc']:.4f}", f"{metrics['wall_time_s']:.1f}"])
                    handle.flush()
                accs.append(metrics["val_acc"])
            spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(f"{name:<28} val {100 * statistics.mean(accs):5.2f} ± {100 * spread:4.2f}  "
                  f"({len(accs)} splits, {metrics['wall_time_s']:.0f} s/run)  {' '.join(overrides)}", flush=True)


def create_with_header(results: Path) -> None:
    """Create the results file holding only the header row, unless it exists. Several sweeps may start at
    once on one new file (the GPU script runs nine): the header is written to a file of its own and
    hard-linked into place, which fails if the file is there, so exactly one header is written and no
    sweep ever reads or appends to a file without one."""
    if results.exists():
        return
    try:
        with atomic_path(results, replace=False) as tmp, tmp.open("w", newline="") as handle:
            csv.writer(handle).writerow(COLUMNS)
    except FileExistsError:
        pass  # another sweep created it first


def recorded(results: Path) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """(tag, candidate, overrides, split seed) -> the last recorded val_acc and wall time."""
    with results.open(newline="") as handle:
        return {(row["tag"], row["candidate"], row["overrides"], row["split_seed"]):
                {"val_acc": float(row["val_acc"]), "wall_time_s": float(row["wall_time_s"])}
                for row in csv.DictReader(handle)}


if __name__ == "__main__":
    main()
