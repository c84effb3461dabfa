"""The training loop: one run from a TrainConfig to a complete run directory.

The loop asks the prior (a loss term) for its named losses each step and lets it do its own update
afterwards; it knows nothing about discriminators. Each epoch's randomness (order, augmentation,
mixing, dropout, the prior's sampling) is seeded from (seed, epoch), so a run resumed from its last
checkpoint ends exactly where an uninterrupted run would. With mixup or CutMix the loss weighs both
labels and training accuracy counts the dominant one; with `ema` on, the weight average is what is
validated, tested and exported (the checkpoint keeps both). Building what is trained and the run
directory is train/setup.py's job.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from filterprior.config import TrainConfig, config_hash, config_to_dict, same_config, validate_config
from filterprior.data.pipeline import Prepared, prepare_data, with_absolute_data_paths
from filterprior.errors import UserError
from filterprior.train import distributed
from filterprior.train.allocator import keep_freed_memory
from filterprior.train.checkpoint import (CHECKPOINT_FILE, export_weights, first_nonfinite, load_checkpoint,
                                          previous_path, restore_previous, save_checkpoint)
from filterprior.train.disk import disk_full_as_user_error
from filterprior.train.evaluate import EvalResult, evaluate
from filterprior.train.meter import EpochMeter
from filterprior.train.precision import autocast, configure_kernels
from filterprior.train.resume import apply_resume_changes, resume_changes
from filterprior.train.run_log import TensorBoardLog, epoch_line, write_metrics_csv
from filterprior.train.setup import Trainee, build, check_run_dir, image_counts, save_filter_picture, start_run_dir
from filterprior.train.testset import testset_fields, write_test_outputs
from filterprior.utils import atomic_write_text, resolve_device, seed_everything


class TrainingDiverged(UserError):
    """A loss or a tensor to checkpoint became NaN or infinite, or the mean training loss exceeded the
    limit; the last good checkpoint is kept."""


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
    check_run_dir(run_dir)
    validate_config(cfg)
    given_cfg = cfg  # a run saved before data paths were made absolute still resumes
    cfg = with_absolute_data_paths(cfg)
    if cfg.threads:  # 0 or None: torch's default
        torch.set_num_threads(cfg.threads)
    configure_kernels(cfg.deterministic)
    device = distributed.setup(resolve_device(cfg.device))  # DDP hook: under torchrun, join its group
    ddp = distributed.ranks()  # rank 0 of 1 without torchrun
    distributed.check_batch_size(cfg.batch_size)
    quiet = quiet or not ddp.main  # ranks other than 0 print nothing, no progress bars either
    if device.type == "cpu":
        keep_freed_memory()  # ~12 % faster steps on CPU: buffers are reused, not page-faulted in again
    say = (lambda msg: None) if quiet else print
    checkpoint_path = run_dir / CHECKPOINT_FILE
    if resume and not checkpoint_path.exists():
        say(f"no checkpoint in {run_dir}: starting from scratch")

    seed_everything(cfg.seed)
    prep = prepare_data(cfg, device, shard=(ddp.rank, ddp.world))  # DDP hook: this rank's share of each batch
    run = build(cfg, prep, device)
    if ddp.distributed:  # DDP hook: the training forward through DDP; mixing needs the whole batch
        run.forward = distributed.wrap_model(run.model, device)
        run.shares_mixed_batch = prep.train_loader.world == 1
    history: list[dict[str, Any]] = []
    start_epoch, step, elapsed = 0, 0, 0.0
    kept_epoch: int | None = None  # the epoch of the checkpoint on disk
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        same = same_config(state.get("config_hash"), cfg) or same_config(state.get("config_hash"), given_cfg)
        changes = {} if same else resume_changes(run_dir, cfg, state)
        run.load_state_dict(state)
        start_epoch, step, elapsed, history = state["epoch"], state["step"], state["elapsed_s"], state["history"]
        apply_resume_changes(run, cfg, changes, step, run_dir, say)
        say(f"resuming {run_dir} from epoch {start_epoch}")
        kept_epoch = start_epoch
    elif ddp.main:  # DDP hook: rank 0 alone writes the run directory
        start_run_dir(run_dir, cfg, device, prep, run.model)

    say(f"{cfg.model.name} on {prep.data.name}: {image_counts(prep)}, {len(prep.classes)} classes, "
        f"{run.steps_per_epoch} steps/epoch, device {device}, run dir {run_dir}")
    kept = lambda: _on_disk(kept_epoch, checkpoint_path)  # noqa: E731 - read when a write fails
    tb = TensorBoardLog(run_dir / "tb" if ddp.main else None)
    with disk_full_as_user_error(run_dir, kept):  # a full disk: one line saying what is kept
        try:
            for epoch in range(start_epoch, cfg.epochs):
                started = time.perf_counter()
                meter, step = _train_epoch(cfg, run, prep, epoch, step, quiet)
                row = meter.read()
                if ddp.distributed:  # DDP hook: the global batch's means (one all-reduce an epoch)
                    row = _global_means(row, meter.seen, prep.train_loader.device)
                _stop_if_diverged(meter, row, run, epoch, kept_epoch, checkpoint_path)
                elapsed += time.perf_counter() - started
                row = {"epoch": epoch + 1, "step": step, "time_s": elapsed,
                       "lr": run.optimizer.param_groups[0]["lr"], **row}
                last = epoch + 1 == cfg.epochs
                if prep.val_loader is not None and (last or (cfg.val_every and (epoch + 1) % cfg.val_every == 0)):
                    val = evaluate(run.evaluated, prep.val_loader, len(prep.classes), cfg.tta)
                    row["val_loss"], row["val_acc"] = val.loss, val.acc
                history.append(row)
                if ddp.main:  # DDP hook: rank 0 alone writes
                    write_metrics_csv(history, run_dir / "metrics.csv")
                tb.log(row)
                say(epoch_line(row, cfg.epochs))
                if ddp.main and (last or (epoch + 1) % max(1, cfg.checkpoint_every) == 0):
                    with disk_full_as_user_error(checkpoint_path, kept):
                        save_checkpoint({**run.state_dict(), "epoch": epoch + 1, "step": step,
                                         "elapsed_s": elapsed, "history": history, "config_hash": config_hash(cfg),
                                         "config": config_to_dict(cfg)}, checkpoint_path, keep_previous=True)
                    kept_epoch = epoch + 1
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, run.evaluated)
        finally:
            tb.close()
        if not ddp.main:  # DDP hook: rank 0 tests and writes the final outputs; the others get its metrics
            return distributed.share_from_main(None)
        metrics = finish_run(cfg, run_dir, run.evaluated, prep, history, step, elapsed, say)
        # The previous checkpoint is only a fallback after a divergence mid-run; a finished run no longer needs
        # it, and it doubled every finished run's disk use (a resume with more epochs writes a new one).
        previous_path(checkpoint_path).unlink(missing_ok=True)
        return distributed.share_from_main(metrics)


def _global_means(row: dict[str, float], seen: int, device: torch.device) -> dict[str, float]:
    """This rank's epoch means as the global batch's: sums over every rank's images, divided by their count."""
    sums = {k: v * seen for k, v in row.items() if k != "train_acc"}
    sums, correct, total = distributed.reduce_epoch(sums, row["train_acc"] * seen, seen, device)
    return {**{k: v / total for k, v in sums.items()}, "train_acc": correct / total}


def _on_disk(kept_epoch: int | None, path: Path) -> str:
    if kept_epoch is None:
        return "no checkpoint was written yet"
    return f"the last good checkpoint (epoch {kept_epoch}) is kept at {path}"


# Steps between reads of the running sums and the finiteness flag inside an epoch (one read: one wait
# for the device); a divergence is acted on at the next read, the epoch's end at the latest.
READ_EVERY = 200


def _train_epoch(cfg: TrainConfig, run: Trainee, prep: Prepared, epoch: int, step: int,
                 quiet: bool) -> tuple[EpochMeter, int]:
    """One pass over the training set (cut short once a loss is not finite); its meter and the step."""
    torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout and the prior's sampling
    prep.train_loader.set_epoch(epoch)
    run.mixer.set_epoch(epoch)
    (run.forward or run.model).train()
    meter = EpochMeter(prep.train_loader.device)
    bar = tqdm(prep.train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=None if (cfg.progress and not quiet) else True)
    try:
        for i, (images, labels) in enumerate(bar):
            global_batch = prep.train_loader.global_batch_size(i) if run.forward is not None else None  # DDP hook
            train_step(cfg, run, images, labels, epoch + i / run.steps_per_epoch, step, meter, global_batch)
            step += 1
            if (i + 1) % READ_EVERY == 0 and meter.divergence() is not None:
                break
    except Exception:
        if meter.divergence() is None:
            raise  # else an error caused by NaN weights: the divergence is reported instead
    return meter, step


def train_step(cfg: TrainConfig, run: Trainee, images: torch.Tensor, labels: torch.Tensor, progress: float,
               step: int, meter: EpochMeter, global_batch: int | None = None) -> None:
    """One optimiser step; nothing in it waits for the device (losses and accuracy go to `meter`)."""
    prior = run.prior
    images, targets = run.mixer(images, labels)
    if run.shares_mixed_batch:  # DDP hook: mixed whole (partners from the whole batch); keep this rank's share
        images, targets = distributed.take_share(images, targets)
        labels = targets.labels
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast(cfg.amp, images.device):  # the forward pass only: losses and priors stay float32
        logits = (run.forward or run.model)(images)
    logits = logits.float()
    losses = {"train_loss": targets.loss(logits, cfg.optim.label_smoothing)}
    if prior is not None:
        losses.update(prior.losses(run.plain, progress))
    total = sum(losses.values())
    if global_batch is not None:  # DDP hook: uneven shares (a short last batch) still average to its mean
        weight = distributed.share_weight(len(labels), global_batch)
        if weight != 1.0:
            total = total + (weight - 1.0) * losses["train_loss"]
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is None:
        total.backward()
        run.optimizer.step()
    else:  # fp16: scaled gradients; a step with inf/NaN gradients is skipped and the scale lowered
        run.scaler.scale(total).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update(run.plain)
    meter.add_losses(losses, step, len(labels))
    if prior is not None:
        meter.add(prior.after_step(run.plain), len(labels))  # floats or device tensors
    meter.add_correct(logits, targets.dominant())  # mixed: the label with the larger share


_ADVICE = "Try a lower learning rate or prior weight (a resume may lower it: --resume optim.lr=...)."


def _stop_if_diverged(meter: EpochMeter, row: dict[str, float], run: Trainee, epoch: int, kept_epoch: int | None,
                      checkpoint_path: Path) -> None:
    """Stop, keeping a good checkpoint, if a loss was not finite, the mean training loss exceeded
    LOSS_LIMIT x ln(classes), or a tensor to checkpoint is not finite (losses can stay finite while
    BatchNorm's running variances overflow)."""
    limit = LOSS_LIMIT * math.log(run.num_classes)
    bad = meter.divergence()
    if bad is not None:
        problem = f"loss {bad.name!r} became {bad.value} at step {bad.step} (epoch {epoch + 1})"
    elif row["train_loss"] > limit:
        problem = (f"the mean training loss of epoch {epoch + 1} is {row['train_loss']:.3g}, above {limit:.3g} "
                   f"({LOSS_LIMIT} x ln {run.num_classes}, ten times a uniform guess's)")
    else:
        tensor = first_nonfinite(run.state_dict())
        if tensor is None:
            return
        problem = f"{tensor} holds NaN or inf after epoch {epoch + 1}, so it was not checkpointed"
    raise TrainingDiverged(f"{problem}; {_kept(meter, epoch, kept_epoch, checkpoint_path, limit)}. {_ADVICE}")


# A mean training cross-entropy above LOSS_LIMIT x ln(classes) is divergence, finite or not: a uniform
# guess scores ln(classes), and no healthy run is ten times worse than guessing.
LOSS_LIMIT = 10


def _kept(meter: EpochMeter, epoch: int, kept_epoch: int | None, path: Path, limit: float) -> str:
    """Which checkpoint is kept. Finite is not good: the weights of the last checkpoint are judged by the
    loss they gave at this epoch's first step, and if it was already bad, the previous checkpoint is put back."""
    if kept_epoch is None:
        return "no checkpoint was written yet"
    first = meter.first_loss("train_loss")
    if kept_epoch == epoch and not (math.isfinite(first) and first <= limit):
        previous = restore_previous(path)
        if previous is not None:
            return (f"the checkpoint of epoch {kept_epoch} already gave a loss of {first:.3g} at its first step, so it "
                    f"was replaced by the one before it: {_on_disk(previous, path)}")
        return (f"the only checkpoint (epoch {kept_epoch}, at {path}) already gave a loss of {first:.3g} at its "
                "first step: resuming from it would likely diverge again; start afresh")
    return _on_disk(kept_epoch, path)


def finish_run(cfg, run_dir: Path, model, prep: Prepared, history, step: int, elapsed: float, say) -> dict[str, Any]:
    """Test once at the end (never the best epoch), export weights, pictures, then metrics.json last.

    The validation pool is evaluated by the last epoch (its row in `history`) and read from there."""
    from filterprior.models import count_parameters
    from filterprior.figures.plots import plot_curves

    num_classes = len(prep.classes)
    val = _last_epoch_val(history, cfg.epochs)
    if val is None and prep.val_loader is not None:
        result = evaluate(model, prep.val_loader, num_classes, cfg.tta)
        val = {"val_loss": result.loss, "val_acc": result.acc}
    test: EvalResult | None = evaluate(model, prep.test_loader, num_classes, cfg.tta) if cfg.test else None
    if test is not None:
        write_test_outputs(test, prep.classes, run_dir)
    plot_curves(run_dir / "metrics.csv", run_dir / "curves.png")
    if cfg.filter_pictures:
        save_filter_picture(model, run_dir / "filters_end.png", "first conv layer, end")
    export_weights(model, run_dir / "weights.safetensors", {
        "model": cfg.model.name, "options": cfg.model.options, "num_classes": num_classes,
        "classes": prep.classes, "mean": list(prep.mean), "std": list(prep.std),
        "image_size": cfg.data.image_size, "dataset": cfg.data.dataset, "test_acc": test.acc if test else None,
        # what eval checks the data against (data/provenance.py), and the hold-out it must repeat
        "source_hash": prep.data.source_hash, "test_fraction": cfg.data.test_fraction,
    })
    test_images = int(len(prep.test_loader.labels))
    metrics = {
        # without a test read (cfg.test false): None, until train.testset fills them from the weights
        **(testset_fields(test, prep.classes, test_images) if test else
           {"test_acc": None, "test_loss": None, "per_class_acc": None, "test_images": test_images}),
        "val_acc": val["val_acc"] if val else None, "val_loss": val["val_loss"] if val else None,
        "classes": prep.classes,
        "epochs": cfg.epochs, "steps": step, "wall_time_s": elapsed,
        "images_per_class": prep.images_per_class, "split_seed": cfg.data.split_seed,
        "train_images": len(prep.train_loader.labels),
        "model": cfg.model.name, "prior": cfg.prior.name, "params": count_parameters(model),
        "config_hash": config_hash(cfg),
        "source_hash": prep.data.source_hash,
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    parts = [f"test accuracy {100 * test.acc:.2f}% ({len(prep.test_loader.labels)} images)"] if test else ["test set not evaluated"]
    if val:
        parts.append(f"validation pool {100 * val['val_acc']:.2f}% ({len(prep.val_loader.labels)} images)")
    say("; ".join(parts) + f"; run dir {run_dir}")
    return metrics


def _last_epoch_val(history: list[dict[str, Any]], epochs: int) -> dict[str, float] | None:
    """The validation pool's loss and accuracy as the last epoch evaluated them (None if it did not)."""
    if history and history[-1].get("epoch") == epochs and "val_acc" in history[-1]:
        return {"val_loss": history[-1]["val_loss"], "val_acc": history[-1]["val_acc"]}
    return None
