"""`filterprior collect`: train K source models (or take given ones) and build a filter bank from them.

Without --config, source models use the packaged recipe `configs/source-cifar100.yaml` (the one that
built the bundled banks); finished source runs in the work directory are reused and interrupted ones
resume, so a long collection can be stopped and restarted.
"""

from __future__ import annotations

import argparse
import json
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
    from filterprior.priors.bank import collect_bank

    paths = [Path(p) for p in args.sources] if args.sources else train_sources(args)
    layers = [name for name in args.layers.split(",") if name] if args.layers else []
    metadata = {"sources": [str(p) for p in paths]}
    accuracies, recipe = [], None
    for path in paths:
        run_dir = path if path.is_dir() else path.parent
        metrics_file, config_file = run_dir / "metrics.json", run_dir / "config.yaml"
        if metrics_file.is_file():
            accuracies.append(json.loads(metrics_file.read_text()).get("test_acc"))
        if recipe is None and config_file.is_file():
            import yaml

            recipe = yaml.safe_load(config_file.read_text())
    if accuracies:
        metadata["source_test_acc"] = accuracies
    if recipe is not None:
        metadata["recipe"] = recipe
        metadata["source_dataset"] = recipe.get("data", {}).get("dataset")
        metadata["seeds"] = [recipe.get("seed")] if len(paths) == 1 else None
    if not paths:
        raise UserError("no source models given")
    bank = collect_bank(paths, layers, args.output, metadata)
    print(f"bank written to {args.output}")
    return 0 if bank is not None else 1
