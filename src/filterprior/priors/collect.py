"""`filterprior collect`: train K source models (or take given ones) and build a filter bank from them.

Without --config, source models use the packaged recipe `configs/source-cifar100.yaml` (the one that
built the bundled banks); finished source runs in the work directory are reused and interrupted ones
resume, so a long collection can be stopped and restarted.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from filterprior.errors import UserError

SOURCE_RECIPE = "source-cifar100.yaml"


def packaged_config(name: str) -> Path:
    return Path(str(resources.files("filterprior") / "configs" / name))


def train_sources(args: argparse.Namespace) -> list[Path]:
    from filterprior.cli import config_from_args
    from filterprior.config import apply_overrides
    from filterprior.train import train

    if args.config is None:
        args.config = str(packaged_config(SOURCE_RECIPE))
    base = config_from_args(args)
    work = Path(args.work_dir or f"runs/sources-{base.model.name}-{Path(base.data.dataset).name}")
    runs = []
    for seed in range(args.num_sources):
        run_dir = work / f"seed{seed}"
        runs.append(run_dir)
        if (run_dir / "metrics.json").exists():
            print(f"source {seed}: finished run found in {run_dir}")
            continue
        cfg = apply_overrides(base, [f"seed={seed}"])
        print(f"source {seed + 1}/{args.num_sources}: training {cfg.model.name} on {cfg.data.dataset} in {run_dir}")
        train(cfg, run_dir, resume=True, quiet=args.quiet)
    return runs


def collect_main(args: argparse.Namespace) -> int:
    from filterprior.priors.bank_build import collect_bank

    if not args.sources and args.num_sources < 1:  # checked before any source trains
        raise UserError(f"--num-sources {args.num_sources} is not valid: expected 1 or more source models to train")
    paths = [Path(p) for p in args.sources] if args.sources else train_sources(args)
    layers = [name for name in args.layers.split(",") if name]
    # collect_bank records each source's seed, test accuracy, dataset and recipe in the metadata.
    import torch

    dtype = torch.float16 if args.half else torch.float32
    collect_bank(paths, layers, args.output, {"sources": [str(p) for p in paths]}, dtype)
    print(f"bank written to {args.output} (metadata in {Path(args.output).with_suffix('.json')})")
    return 0
