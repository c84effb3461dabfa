"""The command line: one module per command (its flags, what it prints, its exit code); `main` dispatches.

Commands parse, build a config and call the library; heavy imports happen inside each command's `run`,
so `--help` stays quick. No library module imports this package.
"""

from __future__ import annotations

import argparse
import os
import sys

from filterprior import __version__
from filterprior.commands import (augment_preview, bank, collect, demo, eval, models, predict, report, study, summary,
                                 train)
from filterprior.commands.common import Parser
from filterprior.errors import UserError

# In the order `--help` lists them.
COMMANDS = (train, augment_preview, eval, predict, models, summary, collect, bank, study, report, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="filterprior",
        description="Train CNN classifiers on CIFAR or your own image folders, with priors over "
        "convolution filters for very little data.",
    )
    parser.add_argument("--version", action="version", version=f"filterprior {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["filterprior", *(sys.argv[1:] if argv is None else argv)]
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = getattr(args, "resume_command", None)
        print("interrupted" + (f"; to resume: {resume}" if resume else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`filterprior bank show X | head -3`): stop quietly, as Unix tools do.
        # Point stdout at devnull so the interpreter's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
