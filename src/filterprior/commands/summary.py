"""`filterprior summary`: one model's per-layer table (shapes, parameters, memory, FLOPs)."""

from __future__ import annotations

import argparse

from filterprior.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("summary", help="per-layer table of a model: shapes, parameters, memory, FLOPs",
                       intermixed=True)
    p.add_argument("model")
    p.add_argument("options", nargs="*", metavar="KEY=VALUE", help="model options, e.g. widths=[32,64,64,128]")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="batch size for the activation memory estimate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from filterprior.models.summary import format_summary
    from filterprior.utils import yaml_problem

    options = {}
    for item in args.options:
        if "=" not in item:
            raise UserError(f"model option {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(f"model option {key}={value!r} is not a valid YAML value ({yaml_problem(exc)}); "
                            "e.g. widths=[32,64,64,128]") from exc
    print(format_summary(args.model, num_classes=args.num_classes, batch_size=args.batch_size, **options))
    return 0
