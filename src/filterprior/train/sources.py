"""Source networks for a filter bank: K runs of one recipe (seeds 0..K-1), reusing finished ones."""

from __future__ import annotations

from pathlib import Path

from filterprior.config import TrainConfig, apply_overrides
from filterprior.train.checkpoint import CHECKPOINT_FILE
from filterprior.train.engine import train


def train_sources(base: TrainConfig, num_sources: int, work: Path, quiet: bool = False) -> list[Path]:
    """Run directories work/seed0 .. seed{K-1}; a finished run is reused, an interrupted one resumes."""
    runs = []
    for seed in range(num_sources):
        run_dir = work / f"seed{seed}"
        runs.append(run_dir)
        if (run_dir / "metrics.json").exists():
            print(f"source {seed}: finished run found in {run_dir}")
            continue
        cfg = apply_overrides(base, [f"seed={seed}"])
        print(f"source {seed + 1}/{num_sources}: training {cfg.model.name} on {cfg.data.dataset} in {run_dir}")
        # Resume only what an interrupted collect left; a fresh source starts without a 'no checkpoint' note.
        train(cfg, run_dir, resume=(run_dir / CHECKPOINT_FILE).exists(), quiet=quiet)
    return runs
