"""`filterprior augment-preview`: a picture of what a recipe's augmentation does to its training images."""

from __future__ import annotations

import argparse

from filterprior.commands.common import add_run_arguments, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("augment-preview", intermixed=True,
                       help="picture of a recipe's augmentation: training images and what epochs make of them")
    add_run_arguments(p)
    p.add_argument("-o", "--output", default="augment_preview.png", help="PNG to write (default augment_preview.png)")
    p.add_argument("--rows", type=int, default=8, help="training images shown, one a row (default 8)")
    p.add_argument("--epochs-shown", type=int, default=7, help="augmented epochs shown beside each (default 7)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from filterprior.config import validate_config
    from filterprior.data.augment_preview import augment_preview
    from filterprior.data.pipeline import prepare_data

    cfg = config_from_args(args)
    validate_config(cfg)
    prep = prepare_data(cfg, torch.device("cpu"))
    loader = prep.train_loader
    out = augment_preview(loader.images.permute(0, 2, 3, 1), loader.labels, loader.augment, prep.mix, args.output,
                          seed=cfg.seed, rows=args.rows, epochs=args.epochs_shown, classes=prep.classes)
    print(f"augmentation preview written to {out}")
    return 0
