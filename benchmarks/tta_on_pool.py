"""Flip test-time augmentation on the validation pool of finished runs; the test set is not read.

    FILTERPRIOR_DATA=../shared/data .venv/bin/python benchmarks/tta_on_pool.py \
        runs/study-cifar10/finetune-airnet/n100/split0 runs/study-cifar10/finetune-airnet/n100/split1 ...

For each run directory: its saved weights, its own config and split, pool accuracy without and with
`tta=flip`. Used to decide (on the pool only) whether a recipe should test with flip TTA.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from filterprior.config import TTA_MODES, load_config
from filterprior.data.pipeline import prepare_data
from filterprior.train.evaluate import evaluate
from filterprior.train.exported import load_exported_model


def pool_accuracies(run_dir: Path) -> dict[str, float]:
    """Pool accuracy of the run's saved weights for each TTA mode (data and model loaded once)."""
    cfg = load_config(run_dir / "config.yaml")
    prep = prepare_data(cfg, torch.device("cpu"))
    model, _ = load_exported_model(run_dir)
    return {tta: evaluate(model, prep.val_loader, len(prep.classes), tta).acc for tta in TTA_MODES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gains = []
    for run in args.runs:
        accs = pool_accuracies(run)
        plain, flip = accs["none"], accs["flip"]
        gains.append(100 * (flip - plain))
        print(f"{run}: pool {100 * plain:.2f}% -> {100 * flip:.2f}% with flip TTA", flush=True)
    spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
    print(f"gain of flip TTA: {statistics.mean(gains):+.2f} ± {spread:.2f} points ({len(gains)} runs)")


if __name__ == "__main__":
    main()
