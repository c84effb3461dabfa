"""`filterprior predict`: classify new, unlabelled images with a run directory or exported weights; CSV out."""

from __future__ import annotations

import argparse
import sys

from filterprior.config import TTA_MODES


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify new images (files or folders) with a run; CSV out")
    p.add_argument("weights", metavar="RUN_OR_WEIGHTS",
                   help="run directory or weights.safetensors (with its .json beside it)")
    p.add_argument("images", nargs="+", metavar="IMAGES",
                   help="image files, or folders searched recursively for image files (.png, .jpg, ...)")
    p.add_argument("-o", "--output", help="CSV file to write (default: standard output)")
    p.add_argument("--top-k", type=int, metavar="K",
                   help="give the K most likely classes and their probabilities instead of one column per class")
    p.add_argument("--tta", choices=TTA_MODES,
                   help="test-time augmentation (default: the run's own setting; none for bare weights)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from filterprior.train.predict import predict_images, predictions_csv
    from filterprior.utils import atomic_write_text

    pred = predict_images(args.weights, args.images, tta=args.tta, device=args.device)
    text = predictions_csv(pred, args.top_k)
    if args.output:
        atomic_write_text(args.output, text)
        tta = f", {pred.tta} test-time augmentation" if pred.tta != "none" else ""
        print(f"{len(pred.paths)} predictions written to {args.output}{tta}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
