"""`filterprior train`: one run from flags and a config to a run directory."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from filterprior.commands.common import add_run_arguments, config_from_args
from filterprior.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train one model; writes a run directory", intermixed=True)
    add_run_arguments(p)
    p.add_argument("--out", help="run directory (default runs/<model>-<data>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars (the final test accuracy is still printed)")
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
    args.resume_command = shlex.join(["filterprior", "train", "--out", str(out), "--resume"])
    metrics = train(cfg, out, resume=args.resume, quiet=args.quiet)
    if args.quiet and isinstance(metrics, dict):  # --quiet hides the progress, not the result
        acc = metrics.get("test_acc")
        print(f"test accuracy {100 * acc:.2f}%; run dir {out}" if acc is not None else f"run dir {out}")
    return 0
