"""The training loop: one run from a TrainConfig to a complete run directory.

The loop asks the prior (a loss term) for its named losses each step and lets it do its own update
afterwards; it knows nothing about discriminators. Each epoch's randomness (order, augmentation,
mixing, dropout, the prior's sampling) is seeded from (seed, epoch), so a run resumed from its last
checkpoint ends exactly where an uninterrupted run would. With mixup or CutMix the loss weighs both
labels and training accuracy counts the dominant one; with `ema` on, the weight average is what is
validated, tested and exported (the checkpoint keeps both).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from filterprior.config import TrainConfig, config_hash, save_config, validate_config
from filterprior.data.pipeline import Prepared, prepare_data, with_absolute_data_paths
from filterprior.errors import UserError
from filterprior.models.introspect import unwrap
from filterprior.train import distributed
from filterprior.train.allocator import keep_freed_memory
from filterprior.train.checkpoint import export_weights, load_checkpoint, save_checkpoint
from filterprior.train.environment import environment_info
from filterprior.train.evaluate import EvalResult, evaluate
from filterprior.train.optim import build_optimizer, build_scheduler
from filterprior.train.run_log import TensorBoardLog, epoch_line, write_metrics_csv
from filterprior.utils import atomic_write_text, resolve_device, seed_everything


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def build_model(cfg: TrainConfig, num_classes: int, device: torch.device):
    from filterprior.models import create_model

    model = create_model(cfg.model.name, num_classes=num_classes, **cfg.model.options)
    model.filterprior_name = cfg.model.name  # priors look up the bundled bank by this name
    if cfg.prior.init_from_bank or cfg.prior.freeze != "none":
        from filterprior.banks import apply_init_from_bank

        apply_init_from_bank(cfg.prior, model, torch.Generator().manual_seed(cfg.seed))
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def _first_conv_weight(model) -> torch.Tensor | None:
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module.weight.detach().cpu()
    return None


def _save_filter_picture(model, path: Path, title: str) -> None:
    weight = _first_conv_weight(model)
    if weight is None:
        return
    from filterprior.figures.filters import plot_filter_grid

    kernels = weight if weight.shape[1] == 3 else weight.flatten(0, 1)
    plot_filter_grid(kernels, path, title=title)


def _save_augment_preview(prep: Prepared, cfg: TrainConfig, path: Path) -> None:
    """What this recipe's augmentation does to some of the run's own training images (its own draws;
    the run's generators are untouched)."""
    from filterprior.data.augment_preview import augment_preview

    loader = prep.train_loader
    augment_preview(loader.images.permute(0, 2, 3, 1), loader.labels, loader.augment, prep.mix, path,
                    seed=cfg.seed, classes=prep.classes)


def _check_finite(losses: dict[str, torch.Tensor], step: int, epoch: int, run_dir: Path) -> None:
    for name, value in losses.items():
        if not torch.isfinite(value).all():
            kept = run_dir / "checkpoint.pt"
            where = f"the last good checkpoint is kept at {kept}" if kept.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"loss {name!r} became {value.item()} at step {step} (epoch {epoch + 1}); {where}. "
                "Try a lower learning rate or prior weight."
            )


def _check_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} is an existing file; choose a directory (new or a run's) for --out")


def _image_counts(prep: Prepared) -> str:
    """Where the dataset's images went: 'full' CIFAR-10 trains on 45,000 (5,000 go to the validation
    pool), and an own folder without test/ also gives 20 % of each class to its test set."""
    n_train, n_all = len(prep.train_loader.labels), len(prep.data.train_labels)
    n_pool = len(prep.val_loader.labels) if prep.val_loader is not None else 0
    unused = n_all - n_train - n_pool
    parts = [f"{n_pool} in the validation pool"] + ([f"{unused} unused"] if unused else [])
    return (f"{n_train} training images (of {n_all}: {', '.join(parts)}), "
            f"{len(prep.test_loader.labels)} test images")


def _epoch_seed(seed: int, epoch: int) -> int:
    # Seeds torch's global RNG each epoch (dropout, the prior's sampling). The loader seeds its own
    # generator (order, augmentation) with data.loader._epoch_seed, another formula. Both decide every
    # recorded run, so neither may change, and they stay two: one formula for both would move every result.
    return (seed * 1_000_003 + epoch * 7919) % (2**63)


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, quiet: bool = False,
          on_epoch_end: Callable[[int, nn.Module], None] | None = None) -> dict[str, Any]:
    """Train one run; write the run directory; return the final metrics (also in metrics.json).

    `on_epoch_end(epoch, model)`, if given, is called after each epoch's checkpoint (epoch counts from 1)
    with the model the run evaluates (the weight average when `ema` is on),
    for diagnostics that are no part of a run, such as benchmarks/seed_reproductions.py's
    `--test-every-epoch`. Training sets the model back to training mode and reseeds before each epoch,
    so a callback that only evaluates leaves the run's results unchanged.
    """
    # Everything that can reject the config runs before the run directory is created or written to.
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    validate_config(cfg)
    given_hash = config_hash(cfg)  # a run saved before data paths were made absolute still resumes
    cfg = with_absolute_data_paths(cfg)
    if cfg.threads:  # 0 or None: torch's default
        torch.set_num_threads(cfg.threads)
    device = distributed.setup(resolve_device(cfg.device))  # DDP hook: under torchrun, join its group
    ddp = distributed.ranks()  # rank 0 of 1 without torchrun
    distributed.check_batch_size(cfg.batch_size)
    quiet = quiet or not ddp.main  # ranks other than 0 print nothing, no progress bars either
    if device.type == "cpu":
        keep_freed_memory()  # ~12 % faster steps on CPU: buffers are reused, not page-faulted in again
    say = (lambda msg: None) if quiet else print
    checkpoint_path = run_dir / "checkpoint.pt"
    if resume and not checkpoint_path.exists():
        say(f"no checkpoint in {run_dir}: starting from scratch")

    seed_everything(cfg.seed)
    prep = prepare_data(cfg, device, shard=(ddp.rank, ddp.world))  # DDP hook: this rank's share of each batch
    num_classes = len(prep.classes)
    model = build_model(cfg, num_classes, device)
    if cfg.sync_batchnorm:  # DDP hook: BatchNorm statistics over the global batch (CUDA only)
        model = distributed.convert_sync_batchnorm(model, device)
    from filterprior.priors import create_prior

    prior = create_prior(cfg.prior, model, device)
    from filterprior.data.mixing import BatchMixer
    from filterprior.train.ema import WeightEMA

    mixer = BatchMixer(prep.mix, seed=cfg.seed)
    ema = WeightEMA(unwrap(model), cfg.ema) if cfg.ema > 0 else None
    evaluated = ema.model if ema is not None else model  # what is validated, tested and exported
    optimizer = build_optimizer(model, cfg.optim)
    steps_per_epoch = len(prep.train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"batch_size {cfg.batch_size} leaves no full training batch")
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = build_scheduler(optimizer, cfg.optim, steps_per_epoch, total_steps)

    history: list[dict[str, Any]] = []
    start_epoch, step, elapsed = 0, 0, 0.0
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        if state.get("config_hash") not in (config_hash(cfg), given_hash):
            raise UserError(f"checkpoint {checkpoint_path} was written with another config; start a new run directory")
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if prior is not None and state.get("prior") is not None:
            prior.load_state_dict(state["prior"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start_epoch, step, elapsed = state["epoch"], state["step"], state["elapsed_s"]
        history = state["history"]
        say(f"resuming {run_dir} from epoch {start_epoch}")
    elif ddp.main:  # DDP hook: rank 0 alone writes the run directory
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        env = {**environment_info(device, cfg), **distributed.describe()}
        atomic_write_text(run_dir / "env.json", json.dumps(env, indent=2))
        if cfg.filter_pictures:
            _save_filter_picture(model, run_dir / "filters_start.png", "first conv layer, start")
        if prep.train_loader.augment.on or prep.mix.on:
            _save_augment_preview(prep, cfg, run_dir / "augment_preview.png")

    say(f"{cfg.model.name} on {prep.data.name}: {_image_counts(prep)}, {num_classes} classes, "
        f"{steps_per_epoch} steps/epoch, device {device}, run dir {run_dir}")
    tb = TensorBoardLog(run_dir / "tb" if ddp.main else None)
    forward = distributed.wrap_model(model, device)  # DDP hook: DDP around the model; the model itself alone
    try:
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout and the prior's sampling
            prep.train_loader.set_epoch(epoch)
            mixer.set_epoch(epoch)
            forward.train()
            sums: dict[str, float] = {}
            correct, seen = 0, 0
            bar = tqdm(prep.train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=None if (cfg.progress and not quiet) else True)
            for i, (images, labels) in enumerate(bar):
                images, targets = mixer(images, labels)
                if ddp.distributed and prep.train_loader.world == 1:  # DDP hook: mixed whole; keep this rank's share
                    images, targets = distributed.take_share(images, targets)
                    labels = targets.labels
                if cfg.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                logits = forward(images)
                losses = {"train_loss": targets.loss(logits, cfg.optim.label_smoothing)}
                if prior is not None:
                    losses.update(prior.losses(model, epoch + i / steps_per_epoch))
                _check_finite(losses, step, epoch, run_dir)
                total = sum(losses.values())
                if ddp.distributed:  # DDP hook: uneven shares (a short last batch) still average to its mean
                    weight = distributed.share_weight(len(labels), prep.train_loader.global_batch_size(i))
                    if weight != 1.0:
                        total = total + (weight - 1.0) * losses["train_loss"]
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                scheduler.step()
                if ema is not None:
                    ema.update(model)
                step += 1
                logged = {k: v.item() for k, v in losses.items()}
                if prior is not None:
                    logged.update(prior.after_step(model))
                for key, value in logged.items():
                    sums[key] = sums.get(key, 0.0) + value * len(labels)
                correct += (logits.argmax(1) == targets.dominant()).sum().item()  # mixed: the larger share
                seen += len(labels)
            if ddp.distributed:  # DDP hook: the global batch's sums (one all-reduce an epoch)
                sums, correct, seen = distributed.reduce_epoch(sums, correct, seen, device)
            elapsed += time.perf_counter() - started
            row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "time_s": elapsed,
                                   "lr": optimizer.param_groups[0]["lr"]}
            row.update({k: v / seen for k, v in sums.items()})
            row["train_acc"] = correct / seen
            last = epoch + 1 == cfg.epochs
            if prep.val_loader is not None and (last or (cfg.val_every and (epoch + 1) % cfg.val_every == 0)):
                val = evaluate(evaluated, prep.val_loader, num_classes, cfg.tta)
                row["val_loss"], row["val_acc"] = val.loss, val.acc
            history.append(row)
            if ddp.main:  # DDP hook: rank 0 alone writes
                write_metrics_csv(history, run_dir / "metrics.csv")
            tb.log(row)
            say(epoch_line(row, cfg.epochs))
            if ddp.main and (last or (epoch + 1) % max(1, cfg.checkpoint_every) == 0):
                save_checkpoint(
                    {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "prior": prior.state_dict() if prior else None,
                     "ema": ema.state_dict() if ema is not None else None,
                     "epoch": epoch + 1, "step": step, "elapsed_s": elapsed, "history": history,
                     "config_hash": config_hash(cfg)},
                    checkpoint_path,
                )
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, evaluated)
    finally:
        tb.close()

    if not ddp.main:  # DDP hook: rank 0 tests and writes the final outputs; the others get its metrics
        return distributed.share_from_main(None)
    return distributed.share_from_main(finish_run(cfg, run_dir, evaluated, prep, history, step, elapsed, say))


def finish_run(cfg, run_dir: Path, model, prep: Prepared, history, step: int, elapsed: float, say) -> dict[str, Any]:
    """Test once at the end (never the best epoch), export weights, pictures, then metrics.json last."""
    from filterprior.models import count_parameters
    from filterprior.figures.plots import plot_confusion, plot_curves, write_confusion_csv

    num_classes = len(prep.classes)
    val: EvalResult | None = None
    if prep.val_loader is not None:
        val = evaluate(model, prep.val_loader, num_classes, cfg.tta)
    test: EvalResult | None = evaluate(model, prep.test_loader, num_classes, cfg.tta) if cfg.test else None
    if test is not None:
        write_confusion_csv(test.confusion, prep.classes, run_dir / "confusion.csv")
        plot_confusion(test.confusion, prep.classes, run_dir / "confusion.png",
                       title=f"test accuracy {100 * test.acc:.2f}%")
    plot_curves(run_dir / "metrics.csv", run_dir / "curves.png")
    if cfg.filter_pictures:
        _save_filter_picture(model, run_dir / "filters_end.png", "first conv layer, end")
    export_weights(model, run_dir / "weights.safetensors", {
        "model": cfg.model.name, "options": cfg.model.options, "num_classes": num_classes,
        "classes": prep.classes, "mean": list(prep.mean), "std": list(prep.std),
        "image_size": cfg.data.image_size, "dataset": cfg.data.dataset, "test_acc": test.acc if test else None,
        # what eval checks the data against (data/provenance.py), and the hold-out it must repeat
        "source_hash": prep.data.source_hash, "test_fraction": cfg.data.test_fraction,
    })
    metrics = {
        "test_acc": test.acc if test else None, "test_loss": test.loss if test else None,
        "val_acc": val.acc if val else None, "val_loss": val.loss if val else None,
        "per_class_acc": dict(zip(prep.classes, test.per_class_acc)) if test else None, "classes": prep.classes,
        "epochs": cfg.epochs, "steps": step, "wall_time_s": elapsed,
        "images_per_class": prep.images_per_class, "split_seed": cfg.data.split_seed,
        "train_images": len(prep.train_loader.labels), "test_images": int(len(prep.test_loader.labels)),
        "model": cfg.model.name, "prior": cfg.prior.name, "params": count_parameters(model),
        "config_hash": config_hash(cfg),
        "source_hash": prep.data.source_hash,
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    parts = [f"test accuracy {100 * test.acc:.2f}% ({len(prep.test_loader.labels)} images)"] if test else ["test set not evaluated"]
    if val:
        parts.append(f"validation pool {100 * val.acc:.2f}% ({len(prep.val_loader.labels)} images)")
    say("; ".join(parts) + f"; run dir {run_dir}")
    return metrics


def per_class_table(metrics: dict[str, Any]) -> str:
    rows = [f"  {name:<20} {100 * acc:6.2f}%" for name, acc in metrics["per_class_acc"].items()]
    return "\n".join(rows)


