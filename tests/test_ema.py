"""The weight EMA: torch's AveragedModel with the warmed-up decay; buffers averaged; state round-trips."""

from __future__ import annotations

import torch
from torch import nn

from filterprior.train.ema import WeightEMA, warmed_up_decay


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def step(model: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    model(torch.randn(4, 3, 6, 6))  # moves the BatchNorm statistics
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))


def test_the_average_follows_the_warmed_up_rule_for_weights_and_buffers():
    model = small_model()
    model(torch.randn(1, 3, 6, 6))  # materialise the lazy layer
    ema = WeightEMA(model, decay=0.9)
    expected = {k: v.clone().float() for k, v in model.state_dict().items()}
    ema.update(model)  # the first update copies
    for t in range(1, 30):
        step(model, t)
        ema.update(model)
        d = warmed_up_decay(0.9, t)
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v.float()
    assert ema.updates == 30
    averaged = ema.model.state_dict()
    for key in ("0.weight", "1.weight", "1.running_mean", "1.running_var", "3.weight"):
        torch.testing.assert_close(averaged[key], expected[key], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(averaged["0.weight"], model.state_dict()["0.weight"])


def test_decay_warms_up_then_holds():
    assert warmed_up_decay(0.999, 0) == 0.1
    assert warmed_up_decay(0.999, 80) == 81 / 90
    assert warmed_up_decay(0.99, 10_000) == 0.99


def test_state_dict_round_trip_continues_identically():
    model = small_model()
    model(torch.randn(1, 3, 6, 6))
    a = WeightEMA(model, decay=0.95)
    for t in range(5):
        step(model, t)
        a.update(model)
    b = WeightEMA(small_model(), decay=0.95)
    b.model(torch.randn(1, 3, 6, 6))
    b.load_state_dict(a.state_dict())
    for t in range(5, 9):
        step(model, t)
        a.update(model)
        b.update(model)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert b.updates == 9
