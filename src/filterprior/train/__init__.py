"""The training engine: `train(cfg, run_dir)` runs one configuration to a complete run directory."""

from filterprior.train.engine import TrainingDiverged, train

__all__ = ["train", "TrainingDiverged"]
