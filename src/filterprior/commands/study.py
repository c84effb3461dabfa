"""`filterprior study`: its flags, and running the grid they describe (exit 1 when a cell failed)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys

from filterprior.config import TrainConfig, apply_overrides, load_config, override_key, packaged_config
from filterprior.errors import UserError
from filterprior.study.grid import DEFAULT_SIZES, DEFAULT_SPLIT_SEEDS


# The recipe every method shares unless --config says otherwise (filternet-s2, tuned on the
# CIFAR-10 validation pool; the bundled filter bank is for this architecture).
DEFAULT_RECIPE = "small-data.yaml"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "study", help="grid of runs: images per class x methods x split seeds", intermixed=True,
        description="A grid of runs (images per class x methods x split seeds) in --out, with results.csv, "
                    "summary.md and accuracy.png. Run the same command again to resume: finished cells are kept, "
                    "an interrupted cell goes on from its last checkpoint, and a finished cell of another config "
                    "is only replaced with --overwrite.")
    add_study_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return study_main(args)


def add_study_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", metavar="YAML", help="base training config (default: the packaged small-data recipe, src/filterprior/configs/small-data.yaml)")
    parser.add_argument("--out", default="runs/study", metavar="DIR", help="study directory (default: runs/study)")
    parser.add_argument(
        "--sizes", default=",".join(map(str, DEFAULT_SIZES)), metavar="N,N",
        help="images per class (default: %(default)s)",
    )
    parser.add_argument("--methods", metavar="A,B", help="methods to compare (default: all in the methods file)")
    parser.add_argument("--methods-file", metavar="YAML",
                        help="your own methods file (replaces the bundled one): name -> list of key=value, or "
                             "name -> {overrides: [...], by_size: {N: [...]}} for a recipe tuned per size")
    parser.add_argument(
        "--split-seeds", default=f"{DEFAULT_SPLIT_SEEDS[0]}-{DEFAULT_SPLIT_SEEDS[-1]}", metavar="0-4",
        help="split seeds as a range 0-4, a list 0,1,2 or both (default: %(default)s)",
    )
    parser.add_argument("--workers", metavar="N", help="parallel worker processes (default: one per CPU core, at most 8; "
                        "with --workers-per-device: K per GPU, capped by N)")
    parser.add_argument("--workers-per-device", metavar="K",
                        help="K workers on each visible CUDA GPU, each keeping its GPU (cuda:0 .. cuda:n-1) for all "
                             "its cells; no effect without a GPU. Without it, workers are spread over the GPUs too")
    parser.add_argument("--shard", metavar="i/n",
                        help="run only cells k with k %% n == i; shards are numbered from 0: --shard 0/4 .. 3/4. "
                             "Shards can run at once into one --out (e.g. a job array)")
    parser.add_argument("--overwrite", action="store_true",
                        help="retrain finished cells whose config has changed since they ran (their results are "
                             "deleted); without it the study refuses and lists them")
    parser.add_argument("--quiet", action="store_true",
                        help="no line per finished cell or progress; the final summary table is still printed")
    parser.add_argument("--hide-test", action="store_true",
                        help="for tuning on the validation pool: cells train without reading the test set, and "
                             "the cell lines, summary.md, accuracy.png and the final table show the pool's accuracy "
                             "and paired gains only. Run the same command without it, once the choice is made: it "
                             "tests each finished cell from its weights (nothing retrains) and shows the test column")
    parser.add_argument("--data", metavar="DATASET", help="cifar10, cifar100, mini, or a folder / archive path")
    parser.add_argument("--data-root", metavar="DIR", help="where datasets are found or downloaded")
    parser.add_argument("--epochs", metavar="N", help="training epochs per cell")
    parser.add_argument("--epochs-by-size", metavar="N=E,N=E",
                        help="epochs for given sizes of --sizes, e.g. 50=80,100=50 (others: --epochs or the config's)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="base-config overrides, e.g. optim.lr=0.1")
    parser.epilog = PRECEDENCE_HELP
    return parser


# Which setting wins when several give the same key, lowest first (also in README's studies section).
PRECEDENCE_HELP = (
    "Settings, lowest precedence first: --config (default: the packaged small-data recipe), a method's own "
    "keys in the methods file (its by_size keys after its shared ones), the command line (--data, --data-root, "
    "--epochs, key=value), --epochs-by-size. "
    "So --epochs 3 trains every cell 3 epochs even where a method sets epochs (a note says so). "
    "data.images_per_class, data.split_seed: the study sets them per cell from --sizes and --split-seeds."
)

# Set per cell by the study: given on its command line they would be silently replaced.
_STUDY_KEYS = {"data.images_per_class": "--sizes", "data.split_seed": "--split-seeds"}


def parse_int(text: str, what: str, minimum: int = 0) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UserError(f"{what} {text!r} is not an integer") from None
    if value < minimum:
        raise UserError(f"{what} {text!r} is not valid: expected an integer >= {minimum}")
    return value


def parse_int_list(text: str, what: str, minimum: int = 0) -> list[int]:
    """'10,50,100', '0-4' or '0-2,5' -> a list of integers in the order written."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UserError(f"{what} {text!r} has an empty item; expected e.g. 0,1,2 or 0-4")
        if "-" in part[1:]:  # a range; part[1:] so a lone '-3' reads as a (rejected) negative number
            low_text, high_text = part.split("-", 1)
            low, high = parse_int(low_text, what, minimum), parse_int(high_text, what, minimum)
            if high < low:
                raise UserError(f"{what} range {part!r} is empty: expected low-high with low <= high")
            values.extend(range(low, high + 1))
        else:
            values.append(parse_int(part, what, minimum))
    return values


def parse_shard(text: str) -> tuple[int, int]:
    index_text, sep, count_text = text.partition("/")
    if not sep:
        raise UserError(f"--shard {text!r} is not of the form i/n (e.g. 0/4)")
    index, count = parse_int(index_text, "--shard index"), parse_int(count_text, "--shard count", minimum=1)
    if index >= count:
        raise UserError(f"--shard {text!r} is not valid: expected 0 <= i < n (shards are numbered from 0)")
    return index, count


def parse_epochs_by_size(text: str | None) -> dict[int, int] | None:
    if not text:
        return None
    mapping = {}
    for item in text.split(","):
        size, sep, epochs = item.partition("=")
        if not sep:
            raise UserError(f"--epochs-by-size item {item!r} is not of the form N=E (e.g. 50=80)")
        mapping[parse_int(size, "--epochs-by-size size", minimum=1)] = parse_int(epochs, "--epochs-by-size epochs", minimum=1)
    return mapping


def command_line_keys(args: argparse.Namespace) -> list[str]:
    """The config keys the command line sets (they beat a method's own value: grid.cell_config)."""
    keys = [override_key(item) for item in args.overrides or [] if "=" in item]
    flags = {"data.dataset": args.data, "data.root": args.data_root, "epochs": args.epochs}
    return keys + [key for key, value in flags.items() if value is not None]


def base_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """--config (default: the packaged small-data recipe), then --data/--data-root/--epochs, then overrides."""
    for key in command_line_keys(args):
        if key in _STUDY_KEYS:
            raise UserError(f"{key} cannot be given to study: the study sets it for each cell from "
                            f"{_STUDY_KEYS[key]}")
    cfg = load_config(args.config or packaged_config(DEFAULT_RECIPE))
    data = cfg.data
    if args.data is not None:
        data = dataclasses.replace(data, dataset=args.data)  # as written: a path is never parsed as YAML
    if args.data_root is not None:
        data = dataclasses.replace(data, root=args.data_root)
    cfg = dataclasses.replace(cfg, data=data)
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=parse_int(args.epochs, "--epochs", minimum=1))
    return apply_overrides(cfg, list(args.overrides or []))


def _check_pool(base) -> None:
    """--hide-test shows the pool only, so a study without one (given, or the dataset's default) is refused."""
    from filterprior.data.splits import DEFAULT_VAL_PER_CLASS

    if base.data.val_per_class == 0:
        why = "data.val_per_class=0 leaves no pool"
    elif base.data.val_per_class is None and DEFAULT_VAL_PER_CLASS.get(base.data.dataset) == 0:
        why = f"the {base.data.dataset} set has no pool by default (data.val_per_class 0)"
    else:
        return
    raise UserError(f"--hide-test shows the validation pool only, but {why}; expected a pool (a dataset's "
                    "default, or data.val_per_class > 0)")


def study_main(args: argparse.Namespace, train_fn=None) -> int:
    """Run the study the arguments describe; 0 when every cell finished, 1 when some failed."""
    from filterprior.study.runner import StudyFailed, run_study

    base = base_config_from_args(args)
    if getattr(args, "hide_test", False):
        _check_pool(base)
    methods = None
    if args.methods:
        methods = [name.strip() for name in args.methods.split(",")]
        if not all(methods):
            raise UserError(f"--methods {args.methods!r} has an empty name; expected e.g. none,gaussian")
    # A study resumes by running the same command again (finished cells are kept): said if interrupted.
    if getattr(args, "command_line", None):
        args.resume_command = shlex.join(args.command_line)
    try:
        results = run_study(
            base,
            args.out,
            sizes=parse_int_list(args.sizes, "--sizes", minimum=1),
            methods=methods,
            split_seeds=parse_int_list(args.split_seeds, "--split-seeds"),
            workers=None if args.workers is None else parse_int(args.workers, "--workers", minimum=1),
            shard=None if args.shard is None else parse_shard(args.shard),
            train_fn=train_fn,
            progress=not getattr(args, "quiet", False),
            methods_file=args.methods_file,
            epochs_by_size=parse_epochs_by_size(args.epochs_by_size),
            overwrite=getattr(args, "overwrite", False),
            command_line_keys=command_line_keys(args),
            workers_per_device=None if getattr(args, "workers_per_device", None) is None
            else parse_int(args.workers_per_device, "--workers-per-device", minimum=1),
            hide_test=getattr(args, "hide_test", False),
        )
    except StudyFailed as exc:
        _print_summary(exc.results_csv.parent)
        print(f"study finished with failures; results so far in {exc.results_csv}\n{exc}", file=sys.stderr)
        return 1
    _draw_bank(base, results.parent)
    _print_summary(results.parent)
    print(f"results: {results}")
    return 0


def _print_summary(out_dir) -> None:
    """The study's summary table, as the demo prints it (also with --quiet: it is the result)."""
    from pathlib import Path

    summary = Path(out_dir) / "summary.md"
    if summary.is_file():
        print()
        print(summary.read_text(encoding="utf-8"))


def _draw_bank(base: TrainConfig, out_dir) -> None:
    """bank.png beside results.csv, so the report shows the bank's filters next to the runs'."""
    from pathlib import Path

    from filterprior.banks.bank import show_bank
    from filterprior.banks.locate import bank_file

    bank = bank_file(base.prior, base.model.name)
    picture = Path(out_dir) / "bank.png"
    if bank is not None and bank.is_file() and not picture.exists():
        show_bank(bank, picture)
