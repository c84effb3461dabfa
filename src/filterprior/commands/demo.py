"""`filterprior demo`: offline, on the embedded mini CIFAR-10 set with the bundled filter bank.

Trains the study's architecture without a prior and with the best prior (as measured in
benchmarks/RESULTS.md), prints a small table, and writes report.html and the filter pictures.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from filterprior.config import apply_overrides, load_config, packaged_config
from filterprior.errors import UserError

# The recipe of the small-data study and the prior that did best on the validation pool.
DEMO_RECIPE = "small-data.yaml"
BEST_METHOD = "transfer"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="offline demo on the embedded mini CIFAR-10 set with the bundled bank")
    p.add_argument("--out", default="demo_out", help="where runs, pictures and report.html go")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epochs (quicker look)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished demo in --out that was run with other settings (e.g. other --epochs)")
    p.set_defaults(func=run)


def run(args) -> int:
    args.resume_command = shlex.join(args.command_line)  # the demo resumes like a study: the same command
    return run_demo(Path(args.out), epochs=args.epochs, overwrite=args.overwrite)


def run_demo(out: Path, epochs: int | None = None, overwrite: bool = False) -> int:
    from filterprior.banks.bank import default_bank_path, show_bank
    from filterprior.report.html import build_report

    started = time.perf_counter()
    base = demo_config(epochs)
    bank = default_bank_path(base.model.name, networks=True)  # what the transfer method uses
    print("filterprior demo: offline, on the embedded mini CIFAR-10 set "
          "(10 images a class to train, 100 a class to test)")
    print(f"model {base.model.name}, {base.epochs} epochs; methods: none vs {BEST_METHOD}; bank: {bank}")
    out.mkdir(parents=True, exist_ok=True)
    if bank is not None:
        show_bank(bank, out / "bank.png")
    _run_cells(base, out, overwrite)
    print()
    print((out / "summary.md").read_text())
    report = build_report(out, out / "report.html")
    print(f"report: {report.resolve()}")
    print(f"filter pictures: {out.resolve()}/<method>/n10/split0/filters_{{start,end}}.png"
          + (f" and {(out / 'bank.png').resolve()}" if bank is not None else ""))
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


def demo_config(epochs: int | None = None):
    """The config both demo runs share: the study's recipe on the mini set, 10 images a class."""
    if epochs is not None and epochs < 1:
        raise UserError(f"demo --epochs {epochs} is not valid: expected 1 or more")
    overrides = ["data.dataset=mini", "data.images_per_class=10"]
    if epochs is not None:
        overrides.append(f"epochs={epochs}")
    return apply_overrides(load_config(packaged_config(DEMO_RECIPE)), overrides)


def _run_cells(base, out: Path, overwrite: bool = False) -> None:
    """The demo's two runs; a failed run ends the demo with one error (which says where its traceback is).

    A finished demo in `out` is reused when its settings are the same, and never replaced unasked."""
    from filterprior.study.changes import CellsChanged, describe
    from filterprior.study.runner import StudyFailed, run_study

    try:
        run_study(base, out, sizes=[10], methods=["none", BEST_METHOD], split_seeds=[0], progress=True,
                  overwrite=overwrite)
    except CellsChanged as exc:
        raise UserError(
            f"demo: {out} holds a finished demo run with other settings ({describe(exc.changed)}); nothing was "
            "replaced. Pass --overwrite to replace it, or choose another --out"
        ) from None
    except StudyFailed as exc:
        label, error = exc.failures[0]
        raise UserError(f"demo: {len(exc.failures)} of 2 runs failed, first {label}: {error}") from None
