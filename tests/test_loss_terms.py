"""Loss terms as nn.Modules: what their state dict holds, old checkpoints, a step with no read-back, and
being told the model's name instead of reading it off the model."""

from __future__ import annotations

import io
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from sync_points import SyncPoints

from filterprior.banks import FilterBank, save_bank
from filterprior.banks.build import bank_from_state_dicts
from filterprior.config import AdversarialConfig, PriorConfig, TrainConfig, apply_overrides
from filterprior.errors import UserError
from filterprior.models import create_model
from filterprior.priors import LossTerm, create_prior
from filterprior.train import train
from filterprior.train.checkpoint import load_checkpoint, save_checkpoint
from filterprior.train.setup import build_model

torch.set_num_threads(1)


def nested_net() -> nn.Module:
    """Conv layers with dotted names ('features.0'), which torch refuses as submodule names."""
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(3, 8, 5), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3)),
        pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), head=nn.Linear(8, 2),
    ))


def random_bank(net: nn.Module) -> FilterBank:
    g = torch.Generator().manual_seed(0)
    return FilterBank({name: torch.randn(40, *m.weight.shape[1:], generator=g)
                       for name, m in net.named_modules() if isinstance(m, nn.Conv2d)}, {"networks": 1})


def steps(model: nn.Module, term: LossTerm, n: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(n):
        loss = sum(term.losses(model, 1.0).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        term.after_step(model)


def adversarial(model: nn.Module, **options) -> LossTerm:
    cfg = PriorConfig(name="adversarial", layers=["all"], kernels_per_step=16, **options)
    return create_prior(cfg, model, "cpu", bank=random_bank(model))


def test_a_loss_term_is_a_module_whose_state_dict_leaves_the_bank_out():
    torch.manual_seed(0)
    model = nested_net()
    term = adversarial(model)
    assert isinstance(term, nn.Module) and isinstance(term.discriminators, nn.ModuleDict)
    assert set(term.discriminators) == {"features-0", "features-3"}
    assert term.discriminator("features.3") is term.discriminators["features-3"]
    d_params = {id(p) for d in term.discriminators.values() for p in d.parameters()}
    assert {id(p) for p in term.parameters()} == d_params
    steps(model, term, 2)
    state = term.state_dict()
    assert all(key.startswith("discriminators.") for key in state if key != "_extra_state")
    assert set(state["_extra_state"]) == {"generator", "d_updates", "optimizers"}
    assert state["_extra_state"]["d_updates"] == 2
    pools = dict(term.pools.named_buffers())  # the bank's kernels: on the device, but not in the checkpoint
    assert set(pools) == {"features-0", "features-3"} and pools["features-0"].shape == (40 * 3, 5, 5)
    assert not any(torch.equal(value, pools["features-0"]) for value in state.values() if isinstance(value, torch.Tensor))
    moved = term.to(torch.float64)  # torch's own _apply walks discriminators and pools
    assert moved is term and next(term.discriminators["features-0"].parameters()).dtype == torch.float64


def test_metrics_are_detached_device_tensors():
    torch.manual_seed(0)
    model = nested_net()
    for term in (adversarial(model), create_prior(PriorConfig(name="gaussian", layers=["all"]), model, "cpu",
                                                  bank=random_bank(model))):
        steps(model, term, 1)
        metrics = term.after_step(model)
        assert metrics and all(isinstance(v, torch.Tensor) and not v.requires_grad and v.device.type == "cpu"
                               for v in metrics.values()), metrics


def legacy_state(term: LossTerm) -> dict:
    """The prior's state in the layout main wrote before loss terms were modules (checkpoint['prior'])."""
    state = {"generator": term.generator.get_state().clone()}
    if hasattr(term, "discriminators"):
        state["d_updates"] = term.d_updates
        state["discriminators"] = {layer: {k: v.clone() for k, v in term.discriminator(layer).state_dict().items()}
                                   for layer in term.layers}
        state["optimizers"] = {layer: opt.state_dict() for layer, opt in term.optimizers.items()}
    if hasattr(term, "anchors"):
        state["anchors"] = {layer: term.anchors[layer].clone() for layer in term.layers}
    buffer = io.BytesIO()  # through torch.save / load as a checkpoint goes: no shared tensors survive
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("options", [dict(), dict(adversarial=AdversarialConfig(loss="wgan-gp", d_steps=2, d_arch="mlp",
                                                                  spectral_norm=True))],
                         ids=["bce", "wgan-gp-mlp-sn"])
def test_a_state_in_the_old_layout_loads_and_continues_exactly(options):
    torch.manual_seed(0)
    model = nested_net()
    term = adversarial(model, **options)
    steps(model, term, 3)
    old = legacy_state(term)
    torch.manual_seed(99)  # another D init and kernel stream until the state is loaded
    restored = adversarial(model, **options)
    restored.load_state_dict(old)
    assert restored.d_updates == 3
    term.after_step(model)
    restored.after_step(model)
    a, b = term.state_dict(), restored.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        if key != "_extra_state":
            assert torch.equal(a[key], b[key]), key
    assert torch.equal(a["_extra_state"]["generator"], b["_extra_state"]["generator"])
    other = create_prior(PriorConfig(name="adversarial", kernels_per_step=16), model, "cpu", bank=random_bank(model))
    with pytest.raises(UserError, match="features.0.*features.3"):
        other.load_state_dict(old)
    with pytest.raises(UserError, match="features.0.*features.3"):
        other.load_state_dict(term.state_dict())


def test_l2_sp_anchors_load_from_the_old_layout():
    torch.manual_seed(0)
    model = nested_net()
    term = create_prior(PriorConfig(name="l2-sp", layers=["all"]), model, "cpu")
    assert set(term.state_dict()) == {"anchors.features-0", "anchors.features-3", "_extra_state"}
    old = legacy_state(term)
    resumed = create_prior(PriorConfig(name="l2-sp", layers=["all"]), nested_net(), "cpu")
    resumed.load_state_dict(old)
    for layer in term.layers:
        assert torch.equal(resumed.anchors[layer], term.anchors[layer])


class SyncCulprits(SyncPoints):
    """SyncPoints that also keeps the tensor each counted call was made on."""

    def __init__(self) -> None:
        super().__init__()
        self.tensors: list[object] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        before = len(self.calls)
        out = super().__torch_function__(func, types, args, kwargs)
        if len(self.calls) > before:
            self.tensors.append(args[0] if args else None)
        return out


@pytest.mark.parametrize("name, options", [
    ("adversarial", dict()), ("adversarial", dict(adversarial=AdversarialConfig(loss="wgan-gp", d_steps=2), view="filter")),
    ("gaussian", dict()), ("mmd", dict()), ("mmd", dict(view="filter")), ("l2-sp", dict()),
], ids=["adversarial-bce", "adversarial-wgan-gp-filter", "gaussian", "mmd", "mmd-filter", "l2-sp"])
def test_the_priors_step_reads_nothing_back_from_the_device(name, options):
    """losses + backward + after_step: no item/float/nonzero/cpu... The only reads are Adam's step counters
    in D's update, which torch keeps on the host unless the optimiser is capturable or fused: on a GPU
    they never wait for it."""
    torch.manual_seed(0)
    model = nested_net()
    term = create_prior(PriorConfig(name=name, layers=["all"], kernels_per_step=16, **options), model, "cpu",
                        bank=random_bank(model))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(2):  # the second step runs with Adam's state in place
        with SyncCulprits() as sync:
            loss = sum(term.losses(model, 1.0).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            term.after_step(model)
        host_counters = {id(s["step"]) for o in getattr(term, "optimizers", {}).values() for s in o.state.values()}
        others = [(call, t) for call, t in zip(sync.calls, sync.tensors) if not (call == "item" and id(t) in host_counters)]
        assert others == [], (step, others)
    for o in getattr(term, "optimizers", {}).values():
        assert not (o.defaults["capturable"] or o.defaults["fused"])
        assert all(s["step"].device.type == "cpu" for s in o.state.values())


# ------------------------------------------------------------------------------ told, not read off the model


def test_the_prior_is_told_the_model_name_and_the_model_carries_none():
    model = create_model("filternet-s2", num_classes=10)
    with pytest.raises(UserError, match="prior.bank"):
        create_prior(PriorConfig(name="mmd"), model, "cpu")  # no name: no bundled bank to find
    term = create_prior(PriorConfig(name="mmd"), model, "cpu", model_name="filternet-s2")
    assert term.bank.metadata.get("model") == "filternet-s2"
    cfg = apply_overrides(TrainConfig(), ["model.name=filternet-s2", "prior.name=mmd", "init.from_bank=true"])
    built = build_model(cfg, 10, torch.device("cpu"))
    assert not hasattr(built, "filterprior_name")


# ------------------------------------------------------------------------------ resume through the engine


class _Stop(Exception):
    pass


def _stop_after_first_epoch(epoch, model):
    if epoch == 1:
        raise _Stop


@pytest.mark.parametrize("legacy", [False, True], ids=["new-layout", "checkpoint-from-main"])
def test_an_adversarial_run_resumed_ends_like_an_uninterrupted_one(tmp_path, legacy):
    torch.manual_seed(0)
    nets = [create_model("mynet-small", num_classes=10).state_dict() for _ in range(2)]
    bank = save_bank(bank_from_state_dicts(nets, []), tmp_path / "bank.safetensors")
    cfg = apply_overrides(TrainConfig(), [
        "data.dataset=mini", "model.name=mynet-small", "batch_size=16", "threads=1", "progress=false", "epochs=2",
        "filter_pictures=false", "test=false", "data.val_per_class=0", "prior.name=adversarial",
        "prior.layers=[all]", f"prior.bank={bank}", "prior.kernels_per_step=16",
    ])
    train(cfg, tmp_path / "full", quiet=True)
    with pytest.raises(_Stop):
        train(cfg, tmp_path / "cut", quiet=True, on_epoch_end=_stop_after_first_epoch)
    checkpoint = tmp_path / "cut" / "checkpoint.pt"
    if legacy:  # the prior's part as main wrote it before loss terms were modules
        state = load_checkpoint(checkpoint)
        new = state["prior"]
        extra = new["_extra_state"]
        state["prior"] = {
            "generator": extra["generator"], "d_updates": extra["d_updates"], "optimizers": extra["optimizers"],
            "discriminators": {layer: {k[len(f"discriminators.{layer}."):]: v for k, v in new.items()
                                       if k.startswith(f"discriminators.{layer}.")} for layer in ("0", "3")},
        }
        save_checkpoint(state, checkpoint)
    train(cfg, tmp_path / "cut", resume=True, quiet=True)
    full = load_file(str(tmp_path / "full" / "weights.safetensors"))
    resumed = load_file(str(tmp_path / "cut" / "weights.safetensors"))
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert (tmp_path / "full" / "metrics.csv").read_text().count("\n") == 3


# ------------------------------------------------------------------------------ priors on every layer of a network


@pytest.mark.parametrize("name", ["gaussian", "mmd", "adversarial"])
def test_priors_on_every_airnet_layer_see_that_layers_own_source_kernels(name):
    """init.mode=network from the bundled airnet bank with prior.layers=[all]: each layer's 'real' kernels
    are that layer's own in the source network (bank.match_layer by name), never another layer's."""
    from filterprior.banks import prior_bank_file

    cfg = apply_overrides(TrainConfig(), ["model.name=airnet", f"prior.name={name}", "prior.layers=[all]",
                                          "init.from_bank=true", "init.mode=network", "prior.kernels_per_step=16"])
    torch.manual_seed(0)
    model = build_model(cfg, 10, torch.device("cpu"))
    term = create_prior(cfg.prior, model, "cpu", prior_bank_file(cfg), model_name=cfg.model.name)
    bank = term.bank
    assert bank.metadata["networks"] == 1 and len(term.layers) == 7 and set(term.layers) == set(bank.layers)
    for layer in term.layers:
        own = bank.kernels(layer, "slice")
        assert torch.equal(model.get_submodule(layer).weight.detach().flatten(0, 1), own)  # the source's, copied
        if name == "gaussian":
            torch.testing.assert_close(term.means[layer], term.prepare(own).flatten(1).mean(0))
        else:
            assert torch.equal(term.pools[layer], own)
    steps(model, term, 1)  # one step of the classifier on the prior's loss alone, then the prior's update
    assert all(torch.isfinite(v).all() for v in term.metrics().values())
