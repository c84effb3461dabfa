"""Optimisers and schedules: weight decay placement and the learning-rate curve of each schedule."""

import math

import pytest
import torch
from torch import nn

from filterprior.config import OptimConfig
from filterprior.errors import UserError
from filterprior.train.optim import build_optimizer, build_scheduler, lr_factor


def test_weight_decay_only_on_matrices_and_kernels():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    opt = build_optimizer(model, OptimConfig(name="adamw", weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert all(p.dim() >= 2 for p in decayed["params"]) and decayed["weight_decay"] == 0.1
    assert all(p.dim() < 2 for p in plain["params"]) and plain["weight_decay"] == 0.0
    assert len(decayed["params"]) == 2 and len(plain["params"]) == 4
    (every,) = build_optimizer(model, OptimConfig(name="adam", weight_decay=0.1, decay_all=True)).param_groups
    assert len(every["params"]) == 6 and every["weight_decay"] == 0.1


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_each_optimiser_takes_a_step(name):
    model = nn.Linear(3, 1)
    opt = build_optimizer(model, OptimConfig(name=name, lr=0.1))
    before = model.weight.detach().clone()
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)


def test_cosine_with_warmup():
    cfg = OptimConfig(schedule="cosine", warmup_epochs=1)
    assert lr_factor(cfg, 0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(cfg, 9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(cfg, 55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(cfg, 100, 10, 100) == pytest.approx(0.0, abs=1e-12)


def test_step_and_onecycle_shapes():
    step = OptimConfig(schedule="step", step_epochs=2, gamma=0.5)
    assert [lr_factor(step, s, 10, 60) for s in (0, 19, 20, 40)] == [1.0, 1.0, 0.5, 0.25]
    one = OptimConfig(schedule="onecycle")
    assert lr_factor(one, 0, 10, 100) == pytest.approx(1 / 25)
    assert lr_factor(one, 25, 10, 100) == pytest.approx(1.0)
    assert lr_factor(one, 99, 10, 100) < 0.01


def test_scheduler_drives_the_optimiser_and_rejects_unknown_names():
    model = nn.Linear(2, 1)
    cfg = OptimConfig(lr=1.0, schedule="cosine")
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=1, total_steps=4)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    with pytest.raises(UserError, match="optim.schedule 'linear'"):
        build_scheduler(opt, OptimConfig(schedule="linear"), 1, 4)
    with pytest.raises(UserError, match="optim.name 'rmsprop'"):
        build_optimizer(model, OptimConfig(name="rmsprop"))
