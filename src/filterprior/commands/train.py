"""`filterprior train`: one run from flags and a config to a run directory."""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import time
from pathlib import Path

from filterprior.commands.common import add_run_arguments, config_from_args
from filterprior.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train one model; writes a run directory", intermixed=True,
        description="Train one model; writes a run directory. Data-parallel on N devices: "
                    "torchrun --nproc_per_node N -m filterprior train ... (batch_size is the global batch; "
                    "sync_batchnorm=true for BatchNorm over it, CUDA only).",
        epilog="speed and precision keys (KEY=VALUE): amp=off|bf16|fp16 (mixed-precision forward pass; fp16 adds a "
               "grad scaler; priors and evaluation stay float32), compile=true (torch.compile the model; "
               "checkpoints and weights stay plain), deterministic=true (deterministic cuDNN/cuBLAS kernels; "
               "otherwise cudnn.benchmark), channels_last=true (see the README).")
    add_run_arguments(p)
    p.add_argument("--out", help="run directory (default runs/<model>-<data>-<time>-<random>, made new)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start the run in --out afresh, deleting the run already there (without it, a non-empty "
                        "--out is refused unless --resume)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars (the final test accuracy is still printed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from filterprior.train import distributed, train
    from filterprior.utils import resolve_device

    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR (the run directory to continue)")
    # Resuming continues the run's own config: `train --out DIR --resume` needs no other flag.
    run_config = Path(args.out) / "config.yaml" if args.resume else None
    cfg = config_from_args(args, base_file=run_config)
    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite contradict each other: continue the run, or start it afresh")
    # DDP hook: under torchrun, join the group first; rank 0 alone claims or makes the run directory
    # and every rank gets its path (or the same error).
    distributed.setup(resolve_device(cfg.device))
    main_rank = distributed.ranks().main
    out = distributed.run_on_main(lambda: _run_dir(args, cfg))
    args.resume_command = shlex.join(["filterprior", "train", "--out", str(out), "--resume"])
    try:
        with distributed.peers_explained():  # DDP hook: a lost peer as one line, not a traceback
            metrics = train(cfg, out, resume=args.resume, quiet=args.quiet)
    except UserError:
        if main_rank and not args.out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # the directory we made for a run that was refused before it wrote anything
        raise
    distributed.leave()  # DDP hook: every rank done; leave the group before the interpreter's shutdown
    if args.quiet and main_rank and isinstance(metrics, dict):  # --quiet hides the progress, not the result
        acc = metrics.get("test_acc")
        print(f"test accuracy {100 * acc:.2f}%; run dir {out}" if acc is not None else f"run dir {out}")
    return 0


def _run_dir(args: argparse.Namespace, cfg) -> Path:
    """--out (refused if it holds something, unless --resume or --overwrite), else a new default directory."""
    if args.out:
        out = Path(args.out)
        if not args.resume:
            _claim_given_dir(out, overwrite=args.overwrite)
        return out
    return _new_default_dir(f"{cfg.model.name}-{Path(cfg.data.dataset).name}")


# What marks a directory as a run's: only such a directory is deleted by --overwrite.
_RUN_FILES = ("config.yaml", "checkpoint.pt", "metrics.csv", "metrics.json")


def _claim_given_dir(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty --out unless asked to overwrite it; an unfinished run is never silently replaced."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    is_run = any((out / name).exists() for name in _RUN_FILES)
    if not overwrite:
        what = ("a finished run" if (out / "metrics.json").exists() else "an unfinished run") if is_run else "other files"
        raise UserError(f"run directory {out} is not empty (it holds {what}); continue it with --resume, start it "
                        "afresh with --overwrite, or choose another --out")
    if not is_run:
        raise UserError(f"--overwrite deletes run directories only, and {out} holds no run ({', '.join(_RUN_FILES)}); "
                        "choose another --out")
    shutil.rmtree(out)


def _new_default_dir(stem: str) -> Path:
    """runs/<stem>-<time>-<random>, created exclusively: two runs started in the same second get two directories."""
    Path("runs").mkdir(exist_ok=True)
    while True:
        out = Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        try:
            os.mkdir(out)
            return out
        except FileExistsError:
            continue
