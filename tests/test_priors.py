"""Priors: kernel views, registry, warm-up, and that each prior really pulls kernels toward a bank."""

from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch
from torch import nn

from filterprior.config import AdversarialConfig, InitConfig, PriorConfig, TrainConfig
from filterprior.errors import UserError
from filterprior.banks import (
    FilterBank,
    apply_init_from_bank,
    init_from_bank,
    kernel_slices,
    normalize_kernels,
    save_bank,
    whole_filters,
)
from filterprior.models.introspect import select_layers
from filterprior.priors import create_prior, list_priors
from filterprior.priors.adversarial import AdversarialPrior
from filterprior.priors.gaussian import fit_gaussian
from filterprior.priors.mmd import median_distance, mmd2

torch.set_num_threads(1)


class SmallNet(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 8, 3)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.conv2(torch.relu(self.bn1(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


def gabors(n: int, g: torch.Generator, size: int = 7) -> torch.Tensor:
    """Smooth oriented kernels: a Gaussian envelope times a cosine grating of random angle and phase."""
    r = torch.arange(size) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    theta = torch.rand(n, 1, 1, generator=g) * math.pi
    freq = 0.15 + 0.1 * torch.rand(n, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    sigma = 1.3 + 0.5 * torch.rand(n, 1, 1, generator=g)
    envelope = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
    return envelope * torch.cos(2 * math.pi * freq * (x * torch.cos(theta) + y * torch.sin(theta)) + phase)


def gabor_bank(n_filters: int = 300) -> FilterBank:
    g = torch.Generator().manual_seed(0)
    filters = gabors(n_filters * 3, g).reshape(n_filters, 3, 7, 7) * (0.5 + torch.rand(n_filters, 3, 1, 1, generator=g))
    conv2 = torch.randn(50, 16, 3, 3, generator=g)
    return FilterBank({"conv1": filters, "conv2": conv2}, {"model": "toy"})


BANK = gabor_bank()
REFERENCE = normalize_kernels(BANK.layers["conv1"]["slices"][:600], "unit").flatten(1)
SCALES = [b * median_distance(REFERENCE) for b in (0.5, 1.0, 2.0)]


def mmd_to_bank(weight: torch.Tensor) -> float:
    return float(mmd2(normalize_kernels(kernel_slices(weight.detach()), "unit").flatten(1), REFERENCE, SCALES))


def optimise(model: nn.Module, term, steps: int, lr: float) -> None:
    """Train conv1 on the prior's loss alone, as the engine would: loss, step, then `after_step`."""
    opt = torch.optim.Adam([model.conv1.weight], lr=lr)
    for _ in range(steps):
        loss = sum(term.losses(model, progress=1.0).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        term.after_step(model)


# ------------------------------------------------------------------------------------------ views


def test_kernel_views_of_a_conv_net():
    w = SmallNet().conv1.weight.detach()
    slices = kernel_slices(w)
    assert slices.shape == (48, 7, 7)
    assert torch.equal(slices[5 * 3 + 2], w[5, 2])  # slice o*in + i is (out o, in i)
    assert whole_filters(w).shape == (16, 3, 7, 7)


def test_unit_normalisation_removes_offset_and_scale():
    k = torch.randn(10, 3, 7, 7)
    unit = normalize_kernels(k, "unit")
    assert torch.allclose(unit.mean(dim=(1, 2, 3)), torch.zeros(10), atol=1e-6)
    assert torch.allclose(unit.flatten(1).norm(dim=1), torch.ones(10), atol=1e-4)
    assert torch.allclose(normalize_kernels(5 * k + 2, "unit"), unit, atol=1e-5)
    assert torch.equal(normalize_kernels(k, "none"), k)
    with pytest.raises(UserError, match="prior.normalize"):
        normalize_kernels(k, "l1")


def test_select_layers():
    model = SmallNet()
    assert [n for n, _ in select_layers(model, [])] == ["conv1"]
    assert [n for n, _ in select_layers(model, ["conv2", "conv1"])] == ["conv2", "conv1"]
    assert [n for n, _ in select_layers(model, ["all"])] == ["conv1", "conv2"]
    with pytest.raises(UserError, match="conv1, conv2"):
        select_layers(model, ["fc"])
    with pytest.raises(UserError, match=r"'all' is not a conv layer.*\[all\] alone"):
        select_layers(model, ["conv1", "all"])


# ------------------------------------------------------------------------------------------ registry


def test_registry_and_bank_errors(tmp_path):
    model = SmallNet()
    assert create_prior(PriorConfig(name="none"), model, "cpu") is None
    assert {"adversarial", "gaussian", "mmd", "l2"} <= set(list_priors())
    with pytest.raises(UserError, match="adversarial"):
        create_prior(PriorConfig(name="adverserial"), model, "cpu")
    with pytest.raises(UserError, match="filterprior collect"):
        create_prior(PriorConfig(name="mmd"), model, "cpu")  # no bank given, none bundled
    path = save_bank(BANK, tmp_path / "bank.safetensors")
    term = create_prior(PriorConfig(name="mmd", bank=str(path)), model, "cpu")
    assert set(term.losses(model, 1.0)) == {"prior/mmd/conv1"}
    with pytest.raises(UserError, match="prior.view"):
        create_prior(PriorConfig(name="l2", view="rows"), model, "cpu")


def test_seed_faithful_forces_the_seed_setup():
    gan = AdversarialConfig(loss="hinge", d_arch="mlp", spectral_norm=True, seed_faithful=True)
    cfg = PriorConfig(name="adversarial", layers=["conv2"], normalize="unit", view="filter", adversarial=gan, weight=0.3)
    term = create_prior(cfg, SmallNet(), "cpu", bank=BANK)
    assert term.layers == ["conv1"]
    gan = term.cfg.adversarial
    assert (term.cfg.normalize, term.cfg.view, gan.loss, gan.d_arch, gan.spectral_norm) == ("none", "slice", "bce", "conv", False)
    assert term.cfg.weight == 0.3


def test_warmup_ramps_lambda():
    model = SmallNet()
    term = create_prior(PriorConfig(name="l2", weight=0.5, warmup_epochs=4.0), model, "cpu")
    full = 0.5 * model.conv1.weight.detach().pow(2).sum()
    for progress, factor in [(0.0, 0.0), (1.0, 0.25), (3.0, 0.75), (4.0, 1.0), (9.0, 1.0)]:
        value = term.losses(model, progress)["prior/l2/conv1"]
        assert torch.allclose(value, factor * full), progress


# ------------------------------------------------------------------------------------------ adversarial


@pytest.mark.slow
@pytest.mark.parametrize("generator_label", [1.0, 0.0], ids=["right-label", "seed-port-bug"])
def test_adversarial_prior_pulls_kernels_toward_the_bank(generator_label):
    torch.manual_seed(1)
    model = SmallNet()
    start = model.conv1.weight.detach().clone()
    term = AdversarialPrior(PriorConfig(name="adversarial", kernels_per_step=64), model, "cpu", BANK, generator_label)
    optimise(model, term, steps=200, lr=0.01)
    mmd_before, mmd_after = mmd_to_bank(start), mmd_to_bank(model.conv1.weight)
    score_before, score_after = term.score("conv1", start), term.score("conv1", model.conv1.weight)
    toward_bank = mmd_after < 0.5 * mmd_before and score_after > score_before
    if generator_label == 1.0:
        assert toward_bank, (mmd_before, mmd_after, score_before, score_after)
    else:  # the flipped label pushes kernels away: the same checks must fail
        assert not toward_bank and mmd_after > mmd_before, (mmd_before, mmd_after, score_before, score_after)


@pytest.mark.parametrize(
    "options",
    [dict(adversarial=AdversarialConfig(loss="hinge")), dict(adversarial=AdversarialConfig(loss="wgan-gp", d_steps=5)),
     dict(adversarial=AdversarialConfig(d_arch="mlp", spectral_norm=True)), dict(view="filter")],
    ids=["hinge", "wgan-gp", "mlp-sn", "filter-view"],
)
def test_adversarial_variants_run_and_log(options):
    model = SmallNet()
    term = AdversarialPrior(PriorConfig(name="adversarial", kernels_per_step=16, **options), model, "cpu", BANK)
    optimise(model, term, steps=2, lr=0.01)
    metrics = term.after_step(model)
    assert {"d_real/conv1", "d_fake/conv1", "d_loss/conv1", "g_loss/conv1"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


def test_adversarial_state_dict_round_trip():
    model = SmallNet()
    cfg = PriorConfig(name="adversarial", kernels_per_step=16)
    torch.manual_seed(0)
    term = AdversarialPrior(cfg, model, "cpu", BANK)
    optimise(model, term, steps=3, lr=0.01)
    buffer = io.BytesIO()
    torch.save(term.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(123)  # a different discriminator init and kernel stream until the state is loaded
    restored = AdversarialPrior(cfg, model, "cpu", BANK)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.d_updates == 3
    term.after_step(model)  # one more identical update on both: same kernels drawn, same Adam state
    restored.after_step(model)
    states = [t.discriminators["conv1"].state_dict() for t in (term, restored)]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = AdversarialPrior(dataclasses.replace(cfg, layers=["conv2"]), model, "cpu", BANK)
    with pytest.raises(UserError, match="conv1"):
        other.load_state_dict(term.state_dict())


# ------------------------------------------------------------------------------------------ gaussian, mmd


def test_gaussian_fit_shrinks_when_samples_are_few():
    g = torch.Generator().manual_seed(0)
    plenty = torch.randn(20000, 4, generator=g) * torch.tensor([1.0, 2.0, 0.5, 1.0]) + 3
    fit = fit_gaussian(plenty)
    assert torch.allclose(fit.mean, torch.full((4,), 3.0), atol=0.05)
    assert fit.shrinkage < 0.05
    assert abs(fit.log_det - 2 * math.log(1.0 * 2.0 * 0.5 * 1.0)) < 0.1
    few = fit_gaussian(torch.randn(10, 49, generator=g))  # fewer samples than dimensions
    assert 0 < few.shrinkage <= 1 and math.isfinite(few.log_det)


def test_gaussian_prior_lowers_the_nll():
    torch.manual_seed(0)
    model = SmallNet()
    term = create_prior(PriorConfig(name="gaussian"), model, "cpu", bank=BANK)
    term.losses(model, 1.0)
    nll_before = term.metrics()["nll/conv1"]
    mmd_before = mmd_to_bank(model.conv1.weight)
    optimise(model, term, steps=100, lr=0.01)
    term.losses(model, 1.0)
    assert term.metrics()["nll/conv1"] < nll_before - 20
    assert mmd_to_bank(model.conv1.weight) < 0.5 * mmd_before


def test_mmd_estimate_separates_distributions():
    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(200, 5, generator=g), torch.randn(200, 5, generator=g), torch.randn(200, 5, generator=g) + 1
    assert abs(float(mmd2(a, b, [2.0]))) < 0.02 < float(mmd2(a, c, [2.0]))


def test_mmd_prior_lowers_the_mmd():
    torch.manual_seed(0)
    model = SmallNet()
    term = create_prior(PriorConfig(name="mmd", kernels_per_step=48), model, "cpu", bank=BANK)
    before = mmd_to_bank(model.conv1.weight)
    optimise(model, term, steps=100, lr=0.01)
    assert mmd_to_bank(model.conv1.weight) < 0.5 * before
    assert "mmd/conv1" in term.metrics()


def test_l2_sp_pulls_every_chosen_layer_back_to_its_start_and_keeps_the_start_on_resume():
    torch.manual_seed(0)
    model = SmallNet()
    start = {name: getattr(model, name).weight.detach().clone() for name in ("conv1", "conv2")}
    term = create_prior(PriorConfig(name="l2-sp", layers=["all"]), model, "cpu")
    assert all(float(loss.detach()) == 0 for loss in term.losses(model, 1.0).values())  # nothing to pull yet
    with torch.no_grad():
        for name in start:
            getattr(model, name).weight.add_(0.5 * torch.randn_like(start[name]))
    state = term.state_dict()
    opt = torch.optim.SGD([model.conv1.weight, model.conv2.weight], lr=0.1)  # each step: 0.8 x the distance
    for _ in range(100):
        loss = sum(term.losses(model, progress=1.0).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name in start:  # each layer back at its own start (moved 0.5 * randn away), not at zero
        assert float((getattr(model, name).weight.detach() - start[name]).abs().max()) < 1e-4
    # A resumed run builds its prior on a freshly initialised model; the checkpoint brings the start back.
    resumed = create_prior(PriorConfig(name="l2-sp", layers=["all"]), SmallNet(), "cpu")
    resumed.load_state_dict(state)
    for name in start:
        torch.testing.assert_close(resumed.anchors[name], start[name])


# ------------------------------------------------------------------------------------------ init from bank


def test_init_from_bank_uses_rescaled_bank_filters_and_freezes():
    torch.manual_seed(0)
    model = SmallNet()
    std_before = float(model.conv1.weight.detach().std())
    filled = init_from_bank(model, BANK, [], torch.Generator().manual_seed(0), freeze="first")
    assert filled == {"conv1": "filters of bank layer conv1"}
    w = model.conv1.weight.detach()
    assert abs(float(w.std()) - std_before) < 1e-5
    ratios = []
    for f in w:  # each filter is one bank filter times one common factor
        ratio = f.flatten() / BANK.filters("conv1").flatten(1)
        match = (ratio - ratio[:, :1]).abs().amax(dim=1) < 1e-4
        assert int(match.sum()) == 1
        ratios.append(float(ratio[match.nonzero()[0, 0], 0]))
    assert max(ratios) - min(ratios) < 1e-4
    assert not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad


def test_init_from_bank_falls_back_to_slices_and_refuses_other_shapes():
    model = SmallNet(in_channels=5)  # no 5x7x7 filters in the bank: 2-D 7x7 slices instead
    filled = apply_init_from_bank(TrainConfig(init=InitConfig(from_bank=True)), model, torch.Generator().manual_seed(0), BANK)
    assert filled == {"conv1": "slices of bank layer conv1"}
    slices = kernel_slices(model.conv1.weight.detach())
    unit_bank = normalize_kernels(BANK.layers["conv1"]["slices"], "unit").flatten(1)
    cosines = normalize_kernels(slices, "unit").flatten(1) @ unit_bank.T
    assert bool((cosines.amax(dim=1) > 0.9999).all())
    odd = nn.Sequential(nn.Conv2d(3, 4, 5))
    with pytest.raises(UserError, match=r"'0'.*\(4, 3, 5, 5\)"):
        init_from_bank(odd, BANK, [])
    assert apply_init_from_bank(TrainConfig(), model) == {}
    with pytest.raises(UserError, match=r"init\.freeze.*init\.from_bank=true"):
        apply_init_from_bank(TrainConfig(init=InitConfig(freeze="first")), model)


def test_network_mode_copies_one_source_network_into_every_layer():
    torch.manual_seed(0)
    sources = [SmallNet() for _ in range(3)]
    bank = FilterBank(
        {name: torch.cat([getattr(net, name).weight.detach() for net in sources]) for name in ("conv1", "conv2")},
        {"networks": 3},
    )
    model = SmallNet()
    cfg = TrainConfig(init=InitConfig(from_bank=True, mode="network"))
    filled = apply_init_from_bank(cfg, model, torch.Generator().manual_seed(1), bank)
    assert set(filled) == {"conv1", "conv2"}
    source = int(filled["conv1"].rsplit(" ", 1)[1])
    assert filled["conv2"].endswith(f"network {source}")
    for name in ("conv1", "conv2"):  # the same network in both layers, its filters exactly, in its order
        assert torch.equal(getattr(model, name).weight, getattr(sources[source], name).weight)
    mixed = FilterBank({"conv1": bank.filters("conv1")}, {"networks": 2})  # 48 filters are not 2 x 16
    with pytest.raises(UserError, match="not 2 networks x 16"):
        init_from_bank(SmallNet(), mixed, ["conv1"], mode="network")
    with pytest.raises(UserError, match="'networks'"):
        init_from_bank(SmallNet(), BANK, [], mode="network")
    with pytest.raises(UserError, match="init.mode.*'stack'"):
        init_from_bank(SmallNet(), bank, [], mode="stack")
