"""The paired difference between two recipes over the split seeds both ran: the same method trained two
ways (80 against 160 epochs) or two methods, each read from a study's results.csv. It answers the pool
question first (--column val, the splits the rule names) and the test question after, from the same files.

    .venv/bin/python benchmarks/compare_recipes.py \
        runs/study-e160-100/results.csv:none-strong-airnet \
        benchmarks/results/study-strong50-results.csv:none-strong-airnet --size 100 --column val --splits 0,1,2

merge_studies.py cannot do this: it keys a table by method name, so one method's two recipes would
clash. Each side must hold one recipe only (one recipe_hash where the file records it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from filterprior.errors import UserError
from filterprior.results import read_results_csv
from filterprior.stats import mean_std, paired_gain


def load_side(spec: str, size: int, column: str) -> tuple[dict[int, float], dict[int, float]]:
    """FILE:METHOD -> (split seed -> accuracy in %, split seed -> wall time in s) at `size` a class."""
    path_text, sep, method = spec.rpartition(":")
    if not sep or not path_text or not method:
        raise UserError(f"{spec!r}: expected RESULTS.csv:METHOD, e.g. runs/study/results.csv:none-strong-airnet")
    path = Path(path_text)
    rows = [r for r in read_results_csv(path) if r.method == method and r.images_per_class == size]
    if not rows:
        raise UserError(f"{path}: no finished run of {method} at {size} images a class")
    recipes = {r.recipe_hash for r in rows if r.recipe_hash}
    if len(recipes) > 1:
        raise UserError(f"{path}: {method} at {size} images a class has {len(recipes)} recipes "
                        f"({', '.join(sorted(recipes))}); compare one recipe with another, never a mixture")
    acc, wall = {}, {}
    for r in rows:
        value = r.test_acc if column == "test" else r.val_acc
        if value is None:
            what = "pool accuracy (val_acc)" if column == "val" else "test accuracy (trained with study --hide-test?)"
            raise UserError(f"{path}: {method} split seed {r.split_seed} records no {what}")
        if r.split_seed in acc:
            raise UserError(f"{path}: {method} at {size} images a class, split seed {r.split_seed}, appears twice")
        acc[r.split_seed], wall[r.split_seed] = 100 * value, r.wall_time_s
    return acc, wall


def comparison(new: dict[int, float], old: dict[int, float], new_wall: dict[int, float],
               old_wall: dict[int, float], splits: list[int] | None) -> str:
    shared = sorted(set(new) & set(old) & (set(splits) if splits is not None else set(new)))
    missing = sorted(set(splits) - set(shared)) if splits is not None else []
    if missing:
        raise UserError(f"split seeds {missing} are not finished on both sides (new has {sorted(new)}, old {sorted(old)})")
    if not shared:
        raise UserError(f"the two sides share no split seed (new has {sorted(new)}, old {sorted(old)})")
    lines = ["| split | new | old | new - old | new wall s | old wall s |", "|---:|---:|---:|---:|---:|---:|"]
    for s in shared:
        lines.append(f"| {s} | {new[s]:.2f} | {old[s]:.2f} | {new[s] - old[s]:+.2f} | {new_wall[s]:.0f} | {old_wall[s]:.0f} |")
    (nm, nsd), (om, osd) = mean_std([new[s] for s in shared]), mean_std([old[s] for s in shared])
    spread = lambda sd: f" ± {sd:.2f}" if sd is not None else ""  # noqa: E731
    gain = paired_gain({s: new[s] for s in shared}, {s: old[s] for s in shared})
    lines.append(f"| mean | {nm:.2f}{spread(nsd)} | {om:.2f}{spread(osd)} | {gain.mean:+.2f} | | |")
    text = "\n".join(lines) + f"\n\npaired gain over {len(shared)} splits: {gain.mean:+.2f}"
    if gain.se is not None:
        text += f" ± {gain.se:.2f} (se), 95 % interval [{gain.low:+.2f}, {gain.high:+.2f}]"
    return text + f", up on {gain.up}/{gain.pairs}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new", help="RESULTS.csv:METHOD, the recipe under test")
    parser.add_argument("old", help="RESULTS.csv:METHOD, the recipe it is compared with")
    parser.add_argument("--size", type=int, required=True, help="images a class")
    parser.add_argument("--column", choices=("val", "test"), default="val",
                        help="val: the validation pool (decide here first); test: the test set (default: val)")
    parser.add_argument("--splits", help="comma-separated split seeds (default: every seed both sides ran)")
    args = parser.parse_args(argv)
    try:
        splits = [int(s) for s in args.splits.split(",")] if args.splits else None
    except ValueError:
        parser.error(f"--splits {args.splits!r}: expected comma-separated integers, e.g. 0,1,2")
    try:
        new, new_wall = load_side(args.new, args.size, args.column)
        old, old_wall = load_side(args.old, args.size, args.column)
        table = comparison(new, old, new_wall, old_wall, splits)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.column} accuracy (%) at {args.size} images a class\nnew: {args.new}\nold: {args.old}\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
