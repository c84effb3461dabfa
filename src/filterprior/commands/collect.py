"""`filterprior collect`: train K source models (or take given ones) and build a filter bank from them.

Without --config, source models use the packaged recipe `configs/source-cifar100.yaml` (the one that
built the bundled banks); finished source runs in the work directory are reused and interrupted ones
resume, so a long collection can be stopped and restarted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from filterprior.commands.common import add_run_arguments, config_from_args
from filterprior.errors import UserError

SOURCE_RECIPE = "source-cifar100.yaml"


def add_parser(sub) -> None:
    parser = sub.add_parser("collect", help="build a filter bank from source models (trained here or given)",
                            intermixed=True)
    parser.add_argument("-o", "--output", required=True, help="bank file to write (.safetensors; a .json sidecar is written beside it)")
    # extend: `--from A --from B` takes both (a plain nargs="+" option keeps only the last)
    parser.add_argument("--from", dest="sources", nargs="+", action="extend", metavar="PATH",
                        help="take existing run directories or weights.safetensors files instead of training "
                        "(several after one --from, or --from repeated)")
    parser.add_argument("--num-sources", type=int, default=5, help="source models to train (seeds 0..K-1; default 5)")
    parser.add_argument("--layers", default="", help="comma-separated conv layer names (default: every conv layer)")
    parser.add_argument("--half", action="store_true",
                        help="store the bank in float16 (half the file; kernels rounded to 3 significant digits)")
    parser.add_argument("--work-dir", help="where source runs go (default runs/sources-<model>-<data>); finished runs are reused")
    parser.add_argument("--quiet", action="store_true")
    add_run_arguments(parser)
    parser.set_defaults(config=None, func=run)


def run(args: argparse.Namespace) -> int:
    from filterprior.banks.build import collect_bank

    if not args.sources and args.num_sources < 1:  # checked before any source trains
        raise UserError(f"--num-sources {args.num_sources} is not valid: expected 1 or more source models to train")
    paths = [Path(p) for p in args.sources] if args.sources else _train_sources(args)
    layers = [name for name in args.layers.split(",") if name]
    # collect_bank records each source's seed, test accuracy, dataset and recipe in the metadata.
    import torch

    dtype = torch.float16 if args.half else torch.float32
    collect_bank(paths, layers, args.output, {"sources": [str(p) for p in paths]}, dtype)
    print(f"bank written to {args.output} (metadata in {Path(args.output).with_suffix('.json')})")
    return 0


def _train_sources(args: argparse.Namespace) -> list[Path]:
    from filterprior.config import packaged_config
    from filterprior.train.sources import train_sources

    if args.config is None:
        args.config = str(packaged_config(SOURCE_RECIPE))
    base = config_from_args(args)
    work = Path(args.work_dir or f"runs/sources-{base.model.name}-{Path(base.data.dataset).name}")
    return train_sources(base, args.num_sources, work, quiet=args.quiet)
