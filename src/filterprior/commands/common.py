"""What several commands share: the parser class, the run flags and turning them into a TrainConfig."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DATA_ROOT_HELP = "folder holding datasets (default: $FILTERPRIOR_DATA, else ~/.cache/filterprior/data)"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Shortcuts for the most used config keys; anything else goes as trailing key=value overrides."""
    parser.add_argument("--config", help="YAML config file (keys as in config.yaml of a run directory)")
    parser.add_argument("--model", help="model name (see `filterprior models`)")
    parser.add_argument("--data", dest="dataset", help="cifar10, cifar100, mini, or an image folder / .tar.gz")
    parser.add_argument("--data-root", help=DATA_ROOT_HELP)
    parser.add_argument("--images-per-class", type=int, help="train on a stratified subset of this size")
    parser.add_argument("--split-seed", type=int, help="which subset (the validation pool stays fixed)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--prior", help="none, l2, l2-sp, gaussian, mmd or adversarial")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    parser.add_argument("--threads", type=int, help="torch CPU threads (0: torch's default)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, anywhere among the options, e.g. optim.name=adam optim.lr=1e-3")


class Parser(argparse.ArgumentParser):
    """`intermixed=True` lets KEY=VALUE positionals sit between options (`train epochs=1 --data mini x=2`);
    plain argparse takes positionals in one run and calls the rest unrecognized."""

    def __init__(self, *args, intermixed: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.intermixed = intermixed
        self._inside = False

    def parse_known_args(self, args=None, namespace=None):
        if not self.intermixed or self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True  # parse_known_intermixed_args calls back into parse_known_args
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def config_from_args(args: argparse.Namespace, base_file: Path | None = None):
    """--config (else `base_file`, else defaults), then the shortcut flags, then key=value overrides."""
    from filterprior.config import TrainConfig, apply_overrides, load_config

    if args.config:
        cfg = load_config(args.config)
    elif base_file is not None and base_file.is_file():
        cfg = load_config(base_file)
    else:
        cfg = TrainConfig()
    shortcuts = {
        "model.name": args.model, "data.dataset": args.dataset, "data.root": args.data_root,
        "data.images_per_class": args.images_per_class, "data.split_seed": args.split_seed,
        "epochs": args.epochs, "batch_size": args.batch_size, "optim.lr": args.lr, "prior.name": args.prior,
        "seed": args.seed, "device": args.device, "threads": args.threads,
    }
    pairs = [f"{k}={json.dumps(v)}" for k, v in shortcuts.items() if v is not None]
    return apply_overrides(cfg, pairs + list(args.overrides))
