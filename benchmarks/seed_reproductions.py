"""Reproduce the seed projects' CIFAR-10 recipes (and a faster SimpleCNN recipe) and compare with their figures.

    FILTERPRIOR_DATA=../shared/data .venv/bin/python benchmarks/seed_reproductions.py \
        [--recipes simplecnn-seed,mynet-small-seed,mynet-deep-seed,simplecnn-fast,resnet18-imagenet-seed,...] \
        [--epochs N] [--runs runs/seed-repro] [--results benchmarks/results/seed_reproductions.csv] \
        [--test-every-epoch FILE] [key=value ...]

Each recipe is a TrainConfig YAML in benchmarks/configs/<recipe>.yaml, trained on all 50,000 training
images; the test set (10,000 images) is evaluated once, at the end. Trailing `key=value` pairs override
every recipe's config (e.g. `data.dataset=mini threads=1`); `--epochs N` overrides the epochs (for a quick
look; such a row is not a reproduction). One line per recipe gives the test accuracy, wall time and CPU
threads next to the seed's figure; each epoch's wall and CPU time (the process's, all threads) is
printed and written to `epoch_times.csv` in the run directory. Rows are appended to the results CSV
with the date, the machine and the torch version, so earlier runs stay on record. Smoke runs: pass
`--results` a temporary file, so that benchmarks/results/seed_reproductions.csv holds real runs only.

The shared `cifar10` (FILTERPRIOR_DATA=/work/shared/data) is a JPEG re-encoding (quality about 75) of
CIFAR-10: accuracies on it are close to, but not exactly, those on the original files the seed used.
mynet-small-seed and mynet-deep-seed are our reconstruction: the seed document gives their results only.
resnet18-imagenet-seed follows seed 004's schedule (8 epochs, SGD, lr 0.001 after the 4th); its batch
size, momentum, starting lr, weight decay and augmentation are our choice (see its YAML);
resnet18-imagenet-fast trains the same model with a one-cycle recipe in fewer epochs.
resnet18-gpu and resnet-scaled-gpu (not in the default list) are full trainings meant for a GPU
(`device=auto` takes CUDA when present): about 7 and 20 CPU-hours here.

`--test-every-epoch FILE` is a diagnostic of how a seed may have reported, not a result: it also reads
the test set after every epoch (rows recipe, epoch, test_acc appended to FILE), to show what picking the
best epoch would have given. It leaves the run itself unchanged; its reported figure stays the last epoch's.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from filterprior.config import apply_overrides, load_config
from filterprior.data.pipeline import load_configured_data, prepare_data
from filterprior.errors import UserError
from filterprior.train import train
from filterprior.train.evaluate import evaluate
from filterprior.utils import atomic_write_text, resolve_device

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
RESULTS = HERE / "results" / "seed_reproductions.csv"

# recipe -> (seed's test accuracy or None, what that figure is)
RECIPES: dict[str, tuple[float | None, str]] = {
    "simplecnn-seed": (0.6926, "seed SimpleCNN, 50 epochs"),
    "mynet-small-seed": (0.54, "seed document 004"),
    "mynet-deep-seed": (0.69, "seed document 004"),
    "simplecnn-fast": (0.6926, "seed SimpleCNN, 50 epochs; target: match it in <= 10 CPU-min"),
    "resnet18-imagenet-seed": (0.71, "seed document 004, 8 epochs"),
    "resnet18-imagenet-fast": (0.71, "seed document 004, 8 epochs; target: beat it in fewer CPU-min"),
    "resnet18-gpu": (None, "no seed figure; GPU work"),
    "resnet-scaled-gpu": (None, "no seed figure; GPU work"),
}
CPU_RECIPES = [name for name in RECIPES if not name.endswith("-gpu")]  # the default: hours, not days, on a CPU
COLUMNS = ["date", "recipe", "dataset", "data_source", "epochs", "overrides", "test_acc", "seed_acc",
           "wall_time_s", "threads", "device", "machine", "torch", "run_dir"]


def machine() -> str:
    """CPU model (from /proc/cpuinfo where there is one), architecture, OS and logical CPU count."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}; {platform.system()} {platform.machine()}; {os.cpu_count()} CPUs"


def data_note(source: str) -> str:
    name = Path(source).name.lower()
    if "jpeg" in name or "jpg" in name:
        return (f"data: {source}: a JPEG re-encoding (quality ~75) of CIFAR-10; accuracies are close to, "
                "not exactly, those on the original files the seed figures come from")
    return f"data: {source}"


def parse_recipes(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in RECIPES]
    if unknown or not names:
        raise UserError(f"--recipes: unknown recipe {unknown[0] if unknown else text!r}; "
                        f"valid recipes are: {', '.join(RECIPES)}")
    return names


class EpochClock:
    """Wall and process CPU seconds of each epoch, taken between epoch ends (the engine records wall time
    only). The first epoch's count starts when train() is called, so it includes setting up the run;
    every count includes the epoch's checkpoint. Time spent in other callbacks is left out (`restart`)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.restart()

    def restart(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def tick(self, epoch: int) -> None:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        self.rows.append({"epoch": epoch, "wall_s": wall, "cpu_s": cpu})
        print(f"  epoch {epoch}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)

    def csv_text(self) -> str:
        return "epoch,wall_s,cpu_s\n" + "".join(f"{r['epoch']},{r['wall_s']:.1f},{r['cpu_s']:.1f}\n" for r in self.rows)


def per_epoch_tester(cfg, recipe: str, path: Path):
    """An on_epoch_end callback that appends (recipe, epoch, test accuracy) to `path` after every epoch."""
    prep = prepare_data(cfg, resolve_device(cfg.device))  # the test set as train() builds it, on its device
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.stat().st_size == 0:
        path.write_text("date,recipe,epoch,test_acc\n")

    def test_now(epoch: int, model) -> None:
        acc = evaluate(model, prep.test_loader, len(prep.classes)).acc
        with path.open("a") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d')},{recipe},{epoch},{acc:.4f}\n")
        print(f"  (diagnostic) epoch {epoch}: test {100 * acc:.2f} %", flush=True)

    return test_now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(CPU_RECIPES), help=f"comma-separated, of: {', '.join(RECIPES)}")
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs (a quick look)")
    parser.add_argument("--runs", default="runs/seed-repro", help="where the run directories go")
    parser.add_argument("--results", default=str(RESULTS), help="CSV the rows are appended to")
    parser.add_argument("--test-every-epoch", metavar="FILE",
                        help="diagnostic: also read the test set after every epoch, rows appended to FILE")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides applied to every recipe")
    args = parser.parse_args()
    recipes = parse_recipes(args.recipes)
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be 1 or more, got {args.epochs}")
    overrides = list(args.overrides) + ([f"epochs={args.epochs}"] if args.epochs is not None else [])
    configs = {name: apply_overrides(load_config(CONFIGS / f"{name}.yaml"), overrides) for name in recipes}

    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    new_file = not results.exists() or results.stat().st_size == 0
    default_threads = torch.get_num_threads()
    lines, notes = [], set()
    with results.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(COLUMNS)
        for name, cfg in configs.items():
            # what the run reads (decoded once, then cached; train() loads the same arrays again)
            source = load_configured_data(cfg.data).source
            note = data_note(source)
            if note not in notes:
                print(note, flush=True)
                notes.add(note)
            torch.set_num_threads(default_threads)  # a recipe without `threads` gets torch's default
            run_dir = Path(args.runs) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            watch = per_epoch_tester(cfg, name, Path(args.test_every_epoch)) if args.test_every_epoch else None
            clock = EpochClock()

            def on_epoch_end(epoch: int, model, watch=watch, clock=clock) -> None:
                clock.tick(epoch)
                if watch is not None:
                    watch(epoch, model)
                clock.restart()

            metrics = train(cfg, run_dir, quiet=False, on_epoch_end=on_epoch_end)
            atomic_write_text(run_dir / "epoch_times.csv", clock.csv_text())
            cpu_s = sum(row["cpu_s"] for row in clock.rows)
            env = json.loads((run_dir / "env.json").read_text())
            seed_acc, seed_what = RECIPES[name]
            acc = metrics["test_acc"]
            acc_text = f"{100 * acc:5.2f} %" if acc is not None else "  n/a  "
            seed_text = f"seed {100 * seed_acc:.2f} %: {seed_what}" if seed_acc is not None else seed_what
            line = (f"{name:<22} test {acc_text} ({seed_text})  "
                    f"{metrics['wall_time_s']:6.0f} s ({cpu_s:.0f} s CPU)  {env['torch_threads']} threads  {cfg.epochs} epochs  "
                    f"{cfg.data.dataset}  {env['device']}")
            print(line, flush=True)
            lines.append(line)
            writer.writerow([time.strftime("%Y-%m-%d"), name, cfg.data.dataset, Path(source).name, cfg.epochs,
                             " ".join(overrides), f"{acc:.4f}" if acc is not None else "",
                             f"{seed_acc:.4f}" if seed_acc is not None else "",
                             f"{metrics['wall_time_s']:.1f}", env["torch_threads"], env["device"], machine(),
                             torch.__version__, str(run_dir)])
            handle.flush()
    if len(lines) > 1:
        print("\n" + "\n".join(lines))
    print(f"rows appended to {results}")


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
