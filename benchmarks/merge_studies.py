"""One summary table from the results.csv of several studies, so a new method's gain is paired with a
baseline recorded by an earlier study over the same splits, without training the baseline again.

    .venv/bin/python benchmarks/merge_studies.py benchmarks/results/study-results.csv \
        runs/study-strong50-100/results.csv --methods none-airnet,none-strong-airnet --sizes 50,100 \
        -o benchmarks/results/study-strong50-100-summary.md

Sound only when the earlier study's cells would be trained the same today: a study cell is a function of
its config (the recorded none-airnet cells retrained at 10 a class gave the recorded accuracies to the last
digit). A (method, size, split) found in more than one file is kept once where both give the same test and
pool accuracies (the same cell retrained; its config hash may differ, as config keys were added since),
and refused otherwise: never averaged or picked from.
The table and its gains are those of `summary.md` (filterprior.results.summary_markdown).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from filterprior.errors import UserError
from filterprior.results import read_results_csv, summary_markdown, write_summary


def merge(paths: list[Path], methods: list[str] | None, sizes: list[int] | None):
    rows, source = [], {}
    for path in paths:
        for row in read_results_csv(path):
            if methods is not None and row.method not in methods:
                continue
            if sizes is not None and row.images_per_class not in sizes:
                continue
            key = (row.method, row.images_per_class, row.split_seed)
            if key in source:
                first, where = source[key]
                if (first.test_acc, first.val_acc) == (row.test_acc, row.val_acc):
                    continue  # the same cell retrained (its config hash may differ: keys added since)
                raise UserError(f"{row.method} at {row.images_per_class} images a class, split seed {row.split_seed}, "
                                f"differs between {where} (test {first.test_acc}, pool {first.val_acc}) and "
                                f"{path} (test {row.test_acc}, pool {row.val_acc}); keep it in one file only")
            source[key] = (row, path)
            rows.append(row)
    if not rows:
        raise UserError(f"no finished runs of the methods {methods} at sizes {sizes} in {[str(p) for p in paths]}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.csv files of studies")
    parser.add_argument("--methods", help="comma-separated methods to keep, in table order (default: all)")
    parser.add_argument("--sizes", help="comma-separated images a class to keep (default: all)")
    parser.add_argument("--baseline", help="the method every other one gains over (default: each its own, "
                        "as in a study's summary.md), e.g. none-strong-airnet for the bank over the tuned row")
    parser.add_argument("-o", "--output", type=Path, help="write the table here too (markdown)")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    try:
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected comma-separated integers, e.g. 50,100")
    try:
        rows = merge(args.results, methods, sizes)
        if args.baseline and args.baseline not in {row.method for row in rows}:
            raise UserError(f"--baseline {args.baseline}: no finished run of it in the files (methods kept: "
                            f"{sorted({row.method for row in rows})})")
        print(summary_markdown(rows, method_order=methods or (), baseline=args.baseline))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        write_summary(rows, args.output, method_order=methods or (), baseline=args.baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
