"""`filterprior models`: the registered models with parameters and FLOPs per image."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list registered models with parameters and FLOPs per image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from filterprior.models.summary import format_models_table

    print(format_models_table(as_json=args.json))
    return 0
