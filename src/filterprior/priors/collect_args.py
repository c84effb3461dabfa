"""Arguments of `filterprior collect` (kept apart so `--help` stays quick to build)."""

from __future__ import annotations

import argparse
from typing import Callable


def add_collect_arguments(parser: argparse.ArgumentParser, add_run_arguments: Callable) -> None:
    parser.add_argument("-o", "--output", required=True, help="bank file to write (.safetensors; a .json sidecar is written beside it)")
    parser.add_argument("--from", dest="sources", nargs="+", metavar="PATH",
                        help="take existing run directories or weights.safetensors files instead of training")
    parser.add_argument("--num-sources", type=int, default=5, help="source models to train (seeds 0..K-1; default 5)")
    parser.add_argument("--layers", default="", help="comma-separated conv layer names (default: every conv layer)")
    parser.add_argument("--half", action="store_true",
                        help="store the bank in float16 (half the file; kernels rounded to 3 significant digits)")
    parser.add_argument("--work-dir", help="where source runs go (default runs/sources-<model>-<data>); finished runs are reused")
    parser.add_argument("--quiet", action="store_true")
    add_run_arguments(parser)
    parser.set_defaults(config=None)
