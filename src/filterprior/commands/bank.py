"""`filterprior bank show`: a bank's summary and a picture of sample kernels."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("bank", help="inspect a filter bank")
    bank_sub = p.add_subparsers(dest="bank_command", metavar="ACTION", required=True)
    show = bank_sub.add_parser("show", help="summary (sources, their accuracy, recipe, layers) and a picture of "
                               "sample kernels")
    show.add_argument("bank", help="bank file (.safetensors; its metadata is stored inside it and repeated in the "
                      ".json sidecar beside it, which show checks against it), or a bundled bank's name "
                      "(airnet-cifar100-networks)")
    show.add_argument("--picture", help="where to write the picture (default: the bank's name with .png, in the current directory)")
    show.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from filterprior.banks.bank import resolve_bank, show_bank

    bank = resolve_bank(args.bank)
    # Default: the current directory, never beside the bank (the bundled ones live inside the package).
    picture = Path(args.picture) if args.picture else Path(bank.with_suffix(".png").name)
    print(show_bank(bank, picture))
    print(f"picture of sample kernels: {picture.resolve()}")
    return 0
