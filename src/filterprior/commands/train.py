"""`filterprior train`: one run from flags and a config to a run directory."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from filterprior.commands.common import add_run_arguments, config_from_args
from filterprior.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train one model; writes a run directory", intermixed=True)
    add_run_arguments(p)
    p.add_argument("--out", help="run directory (default runs/<model>-<data>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from filterprior.train import train

    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR (the run directory to continue)")
    # Resuming continues the run's own config: `train --out DIR --resume` needs no other flag.
    run_config = Path(args.out) / "config.yaml" if args.resume else None
    cfg = config_from_args(args, base_file=run_config)
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.model.name}-{Path(cfg.data.dataset).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.resume and (out / "metrics.json").exists():
        raise UserError(f"run directory {out} already holds a finished run; choose another --out")
    train(cfg, out, resume=args.resume, quiet=args.quiet)
    return 0
