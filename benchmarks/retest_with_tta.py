"""A study's results.csv as it would read had its recipe tested with another TTA mode: same weights,
pool and test accuracy from `tta_on_pool.py`'s CSVs (the pool one read first; the test one only for a
mode the pool chose). Every other tool (compare_recipes.py, merge_studies.py, plot_standing.py) then
reads it like any study's results.

    .venv/bin/python benchmarks/retest_with_tta.py runs/study-x/results.csv --tta flip-shift --shift 3 \
        --pool pool.csv --test test.csv -o benchmarks/results/study-x-flipshift-results.csv

Test-time augmentation does not touch training (it is read once, after the last epoch), so a study run
again with `tta=<mode>` trains these very weights; its config and recipe hashes are computed here as that
study would record them (after checking that the run's config.yaml gives back the recorded hashes), so a
derived row is never averaged with a row tested another way.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

from filterprior.config import TTA_MODES, load_config
from filterprior.errors import UserError
from filterprior.results import read_results_csv, write_results_csv
from filterprior.study.grid import cell_hash, recipe_hash


def read_tta_csv(path: Path, tta: str, shift: int, want_set: str) -> dict[str, float]:
    """Resolved run directory -> accuracy for one mode, from a tta_on_pool.py CSV of the `want_set` set."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; expected a CSV written by tta_on_pool.py --csv")
    got = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("set") != want_set:
                raise UserError(f"{path}: a row reads the {row.get('set')!r} set; expected {want_set!r} only")
            if row["tta"] == tta and int(row["shift"]) == (shift if tta.startswith("flip-shift") else 0):
                got[str(Path(row["run"]).resolve())] = float(row["acc"])
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the study's results.csv (its run_dir paths are under its folder)")
    parser.add_argument("--tta", required=True, help="the mode to read (e.g. flip-shift)")
    parser.add_argument("--shift", type=int, default=0, help="flip-shift's shift in pixels")
    parser.add_argument("--pool", type=Path, required=True, help="tta_on_pool.py CSV of the pool")
    parser.add_argument("--test", type=Path, required=True, help="tta_on_pool.py --test CSV")
    parser.add_argument("-o", "--output", type=Path, required=True, help="results.csv to write (must not exist)")
    args = parser.parse_args()
    try:
        if args.tta not in TTA_MODES:  # a candidate of tta_on_pool.py only: no study could record it
            raise UserError(f"--tta {args.tta!r} is not a mode of the library; expected one of {', '.join(TTA_MODES)}")
        if args.output.exists():
            raise UserError(f"{args.output} exists; name a new file")
        pool = read_tta_csv(args.pool, args.tta, args.shift, "pool")
        test = read_tta_csv(args.test, args.tta, args.shift, "test")
        rows = []
        for row in read_results_csv(args.results):
            run = (args.results.parent / row.run_dir).resolve()
            if str(run) not in test or str(run) not in pool:
                continue  # a run the pool or the test read did not cover: left out, and said below
            cfg = load_config(run / "config.yaml")
            if cell_hash(cfg) != row.config_hash or recipe_hash(cfg) != row.recipe_hash:
                raise UserError(f"{run}/config.yaml does not give back the hashes {args.results} records for "
                                f"it ({row.config_hash}, {row.recipe_hash}); cannot name the retested recipe")
            retested = dataclasses.replace(cfg, tta=args.tta)
            rows.append(dataclasses.replace(row, test_acc=test[str(run)], val_acc=pool[str(run)],
                                            config_hash=cell_hash(retested), recipe_hash=recipe_hash(retested)))
        if not rows:
            raise UserError(f"no run of {args.results} is in both {args.pool} and {args.test}")
        write_results_csv(rows, args.output)
    except UserError as exc:
        sys.exit(f"error: {exc}")
    print(f"{len(rows)} runs of {args.results} retested with {args.tta} written to {args.output}")


if __name__ == "__main__":
    main()
