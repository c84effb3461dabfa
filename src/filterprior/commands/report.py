"""`filterprior report`: one self-contained HTML file for a study or run directory."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report of a study or run directory")
    p.add_argument("runs_dir")
    p.add_argument("-o", "--output", default="report.html")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from filterprior.report.html import build_report

    out = build_report(args.runs_dir, args.output)
    print(f"report written to {out}")
    return 0
