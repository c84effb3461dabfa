"""A training step makes no call that would make the host wait for a GPU (issue 14, part 2).

Counted on the CPU with tests/sync_points.py: the loader's next batch (order, crop, flip, cutout, the
mixer) and the whole step (forward, losses, backward, optimiser, schedule, the running sums and the
finiteness flag) run inside the counter, for real training steps on the mini set.
"""

from __future__ import annotations

import pytest
import torch

from filterprior.config import TrainConfig, apply_overrides
from filterprior.data.pipeline import prepare_data
from filterprior.train.engine import train_step
from filterprior.train.meter import EpochMeter
from filterprior.train.setup import build
from filterprior.utils import seed_everything
from sync_points import SyncPoints

QUICK = ["data.dataset=mini", "model.name=simplecnn", "batch_size=16", "threads=1", "progress=false", "epochs=1"]


def _sync_calls_in_steps(*overrides: str, steps: int = 3) -> tuple[list[str], dict[str, float]]:
    cfg = apply_overrides(TrainConfig(), QUICK + list(overrides))
    seed_everything(cfg.seed)
    prep = prepare_data(cfg, torch.device("cpu"))
    run = build(cfg, prep, torch.device("cpu"))
    meter = EpochMeter(torch.device("cpu"))
    batches = iter(prep.train_loader)
    def adam_step_counters():  # the discriminators' optimisers keep their step counts on the host
        optimizers = getattr(run.prior, "optimizers", {}) if run.prior is not None else {}
        return [state["step"] for o in optimizers.values() for state in o.state.values()
                if not (o.defaults.get("capturable") or o.defaults.get("fused"))]

    with SyncPoints(host_only=adam_step_counters) as sync:
        for step in range(steps):
            images, labels = next(batches)
            train_step(cfg, run, images, labels, step / run.steps_per_epoch, step, meter)
    return sync.calls, meter.read()


def test_a_plain_step_with_crop_flip_and_cutout_never_waits_for_the_device():
    calls, row = _sync_calls_in_steps("data.crop_padding=4", "data.flip=true", "data.cutout=8")
    assert calls == [], calls
    assert row["train_loss"] > 0 and 0 <= row["train_acc"] <= 1  # the sums were kept, and read once after


def test_a_step_with_cutmix_and_mixup_never_waits_for_the_device():
    calls, _ = _sync_calls_in_steps("data.cutmix=1.0", "data.mixup=0.2")
    assert calls == [], calls


def test_a_step_with_the_weight_average_never_waits_for_the_device():
    calls, _ = _sync_calls_in_steps("ema=0.9", steps=3)  # the first update copies, the later ones average
    assert calls == [], calls


def test_the_counter_sees_the_old_loops_reads():
    """The test above can fail: the read-backs the old loop made each step are counted."""
    loss = torch.tensor(1.5)
    with SyncPoints() as sync:
        loss.item()
        bool(torch.isfinite(loss).all())
    assert sync.calls == ["item", "__bool__"]


def test_a_step_with_the_adversarial_prior_never_waits_for_the_device():
    calls, _ = _sync_calls_in_steps("model.name=filternet-s2", "prior.name=adversarial")
    assert calls == [], calls
