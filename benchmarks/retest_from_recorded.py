"""A study's results.csv retested with another TTA mode from recorded per-split accuracies, for when the
run folders (weights, config.yaml) are gone and only the reads' figures survive, e.g. in RESULTS.md's tables.

    .venv/bin/python benchmarks/retest_from_recorded.py benchmarks/results/study-e640-50-flipshift-results.csv \
        --method none-strong-airnet --size 50 --tta flip-shift-diagonal \
        --val 65.80,66.56,65.66,66.92,64.94 --test 65.46,65.30,64.79,66.51,63.97 \
        --data cifar10 --override threads=1 -o benchmarks/results/study-e640-50-diagonal-results.csv

`retest_with_tta.py` does the same from the run folders and tta_on_pool.py's CSVs; use it while they
exist. Here each row's config is rebuilt by `filterprior study`'s own code from the study arguments given
(--data, --override, --epochs-by-size, --methods-file: the command line's keys beat the method's, as in the
study) and must give back the hashes the source file records for the row's own TTA mode, so a wrong rebuild
stops the script;
the rows are then written with the given accuracies (percent, in split-seed order) and the hashes a study
testing with `--tta` records.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from filterprior.commands.study import add_study_arguments, base_config_from_args, command_line_keys, parse_epochs_by_size
from filterprior.config import TTA_MODES
from filterprior.errors import UserError
from filterprior.results import read_results_csv, write_results_csv
from filterprior.study.grid import Cell, cell_config, cell_hash, recipe_hash
from filterprior.study.methods import load_methods


def percentages(text: str, flag: str, count: int) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected comma-separated percentages, e.g. 41.58,45.22") from None
    if len(values) != count or not all(0 <= v <= 100 for v in values):
        raise UserError(f"{flag} gives {len(values)} values; expected {count} percentages (0-100), one a split")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the study's results.csv (or a derived one) to retest")
    parser.add_argument("--method", required=True)
    parser.add_argument("--size", type=int, required=True, help="images a class")
    parser.add_argument("--tta", required=True, help="the mode the accuracies were read with")
    parser.add_argument("--val", required=True, help="pool accuracies, percent, in split-seed order")
    parser.add_argument("--test", required=True, help="test accuracies, percent, in split-seed order")
    parser.add_argument("--data", default="cifar10", help="the study's --data")
    parser.add_argument("--override", action="append", default=[], help="a key=value the study command gave")
    parser.add_argument("--epochs-by-size", help="the study's --epochs-by-size, e.g. 50=640")
    parser.add_argument("--methods-file", type=Path, help="the study's --methods-file (default: the bundled one)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="results.csv to write (must not exist)")
    args = parser.parse_args()
    try:
        if args.tta not in TTA_MODES:
            raise UserError(f"--tta {args.tta!r} is not a mode of the library; expected one of {', '.join(TTA_MODES)}")
        if args.output.exists():
            raise UserError(f"{args.output} exists; name a new file")
        rows = sorted((r for r in read_results_csv(args.results)
                       if r.method == args.method and r.images_per_class == args.size), key=lambda r: r.split_seed)
        if not rows:
            raise UserError(f"{args.results}: no run of {args.method} at {args.size} images a class")
        val, test = (percentages(getattr(args, k), f"--{k}", len(rows)) for k in ("val", "test"))
        method = load_methods(args.methods_file)[args.method]
        study = add_study_arguments(argparse.ArgumentParser()).parse_args(
            ["--data", args.data, *(["--epochs-by-size", args.epochs_by_size] if args.epochs_by_size else []),
             *args.override])
        base, keys, epochs_by_size = base_config_from_args(study), command_line_keys(study), \
            parse_epochs_by_size(study.epochs_by_size)
        out = []
        for row, v, t in zip(rows, val, test):
            cfg = cell_config(base, Cell(method, args.size, row.split_seed), epochs_by_size, keys)
            recorded = as_recorded(row, cfg)
            if recorded is None or recipe_hash(recorded) != row.recipe_hash:
                raise UserError(f"{args.results}, split {row.split_seed}: the rebuilt config does not give back the "
                                f"recorded hashes ({row.config_hash}, {row.recipe_hash}); check --data, --override "
                                f"and the methods file")
            retested = dataclasses.replace(cfg, tta=args.tta)
            out.append(dataclasses.replace(row, val_acc=round(v / 100, 4), test_acc=round(t / 100, 4),
                                           config_hash=cell_hash(retested), recipe_hash=recipe_hash(retested)))
        write_results_csv(out, args.output)
    except UserError as exc:
        sys.exit(f"error: {exc}")
    print(f"{len(out)} runs of {args.method} at {args.size} a class retested with {args.tta} written to {args.output}")


def as_recorded(row, cfg):
    """The rebuilt config with the TTA mode the source row was tested with (the methods file may have moved on
    since): the one of TTA_MODES that gives back the row's config hash; None when none does."""
    for tta in TTA_MODES:
        candidate = dataclasses.replace(cfg, tta=tta)
        if cell_hash(candidate) == row.config_hash:
            return candidate
    return None


if __name__ == "__main__":
    main()
