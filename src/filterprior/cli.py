"""Command line: parses, builds a config, calls one function. Heavy imports happen inside commands."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from filterprior import __version__
from filterprior.config import TTA_MODES
from filterprior.errors import UserError

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


def cmd_train(args: argparse.Namespace) -> int:
    from filterprior.train import train

    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR (the run directory to continue)")
    # Resuming continues the run's own config: `train --out DIR --resume` needs no other flag.
    run_config = Path(args.out) / "config.yaml" if args.resume else None
    cfg = config_from_args(args, base_file=run_config)
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.model.name}-{Path(cfg.data.dataset).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.resume and (out / "metrics.json").exists():
        raise UserError(f"run directory {out} already holds a finished run; choose another --out")
    args.resume_command = shlex.join(["filterprior", "train", "--out", str(out), "--resume"])
    metrics = train(cfg, out, resume=args.resume, quiet=args.quiet)
    if args.quiet and isinstance(metrics, dict):  # --quiet hides the progress, not the result
        acc = metrics.get("test_acc")
        print(f"test accuracy {100 * acc:.2f}%; run dir {out}" if acc is not None else f"run dir {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from filterprior.train.evaluation_cli import evaluate_path

    result = evaluate_path(args.path, dataset=args.dataset, root=args.data_root, device=args.device,
                           tta=args.tta)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        tta = ", flip test-time augmentation" if result["tta"] == "flip" else ""
        print(f"test accuracy {100 * result['test_acc']:.2f}%  loss {result['test_loss']:.4f}  "
              f"({result['test_images']} images of {result['dataset']}{tta})")
        for name, acc in result["per_class_acc"].items():
            print(f"  {name:<20} {100 * acc:6.2f}%")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from filterprior.models.summary import format_models_table

    print(format_models_table(as_json=args.json))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    import yaml

    from filterprior.config import yaml_problem
    from filterprior.models.summary import format_summary

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


def cmd_collect(args: argparse.Namespace) -> int:
    from filterprior.priors.collect import collect_main

    return collect_main(args)


def cmd_bank(args: argparse.Namespace) -> int:
    from filterprior.priors.bank import show_bank

    # Default: the current directory, never beside the bank (the bundled ones live inside the package).
    picture = Path(args.picture) if args.picture else Path(Path(args.bank).with_suffix(".png").name)
    print(show_bank(args.bank, picture))
    print(f"picture of sample kernels: {picture.resolve()}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from filterprior.study.cli import study_main

    return study_main(args)


def cmd_report(args: argparse.Namespace) -> int:
    from filterprior.report.html import build_report

    out = build_report(args.runs_dir, args.output)
    print(f"report written to {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from filterprior.demo import run_demo

    args.resume_command = shlex.join(args.command_line)  # the demo resumes like a study: the same command
    return run_demo(Path(args.out), epochs=args.epochs, overwrite=args.overwrite)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="filterprior",
        description="Train CNN classifiers on CIFAR or your own image folders, with priors over "
        "convolution filters for very little data.",
    )
    parser.add_argument("--version", action="version", version=f"filterprior {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train one model; writes a run directory", intermixed=True)
    add_run_arguments(p)
    p.add_argument("--out", help="run directory (default runs/<model>-<data>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars (the final test accuracy is still printed)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run directory or exported weights on a test set")
    p.add_argument("path", help="run directory or weights.safetensors (with its .json beside it)")
    p.add_argument("--data", dest="dataset", help="dataset to test on (default: the one it was trained on)")
    p.add_argument("--data-root", help=DATA_ROOT_HELP)
    p.add_argument("--device", default="auto")
    p.add_argument("--tta", choices=TTA_MODES,
                   help="test-time augmentation (default: the run's own setting; none for bare weights)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("models", help="list registered models with parameters and FLOPs per image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="per-layer table of a model: shapes, parameters, memory, FLOPs",
                       intermixed=True)
    p.add_argument("model")
    p.add_argument("options", nargs="*", metavar="KEY=VALUE", help="model options, e.g. widths=[32,64,64,128]")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="batch size for the activation memory estimate")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("collect", help="build a filter bank from source models (trained here or given)",
                       intermixed=True)
    from filterprior.priors.collect_args import add_collect_arguments

    add_collect_arguments(p, add_run_arguments)
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("bank", help="inspect a filter bank")
    bank_sub = p.add_subparsers(dest="bank_command", metavar="ACTION", required=True)
    show = bank_sub.add_parser("show", help="summary and a picture of sample kernels")
    show.add_argument("bank", help="bank file (.safetensors with its .json beside it)")
    show.add_argument("--picture", help="where to write the picture (default: the bank's name with .png, in the current directory)")
    show.set_defaults(func=cmd_bank)

    p = sub.add_parser("study", help="grid of runs: images per class x methods x split seeds", intermixed=True)
    from filterprior.study.cli import add_study_arguments

    add_study_arguments(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("report", help="one self-contained HTML report of a study or run directory")
    p.add_argument("runs_dir")
    p.add_argument("-o", "--output", default="report.html")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="offline demo on the embedded mini CIFAR-10 set with the bundled bank")
    p.add_argument("--out", default="demo_out", help="where runs, pictures and report.html go")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epochs (quicker look)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished demo in --out that was run with other settings (e.g. other --epochs)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["filterprior", *(sys.argv[1:] if argv is None else argv)]
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = getattr(args, "resume_command", None)
        print("interrupted" + (f"; to resume: {resume}" if resume else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
