"""`filterprior eval`: test a run directory or exported weights; prints accuracy per class (or JSON)."""

from __future__ import annotations

import argparse
import json

from filterprior.commands.common import DATA_ROOT_HELP
from filterprior.config import TTA_MODES


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run directory or exported weights on a test set")
    p.add_argument("path", help="run directory or weights.safetensors (with its .json beside it)")
    p.add_argument("--data", dest="dataset", help="dataset to test on (default: the one it was trained on)")
    p.add_argument("--data-root", help=DATA_ROOT_HELP)
    p.add_argument("--device", default="auto")
    p.add_argument("--tta", choices=TTA_MODES,
                   help="test-time augmentation (default: the run's own setting; none for bare weights)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from filterprior.train.exported import evaluate_path

    result = evaluate_path(args.path, dataset=args.dataset, root=args.data_root, device=args.device,
                           tta=args.tta)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        tta = f", {result['tta']} test-time augmentation" if result["tta"] != "none" else ""
        print(f"test accuracy {100 * result['test_acc']:.2f}%  loss {result['test_loss']:.4f}  "
              f"({result['test_images']} images of {result['dataset']}{tta})")
        for name, acc in result["per_class_acc"].items():
            print(f"  {name:<20} {100 * acc:6.2f}%")
    return 0
