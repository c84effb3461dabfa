"""Filter banks: save/load round trip, damage detection, building from state dicts and run directories."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import save_file
from torch import nn

from filterprior.errors import UserError
from filterprior.banks.bank import (
    FilterBank,
    bank_sidecar_path,
    default_bank_path,
    describe_bank,
    load_bank,
    save_bank,
    show_bank,
)
from filterprior.banks.build import bank_from_state_dicts, collect_bank

torch.set_num_threads(1)


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 7, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.Flatten(), nn.LazyLinear(2)
    )


def random_bank() -> FilterBank:
    g = torch.Generator().manual_seed(0)
    return FilterBank(
        {"conv1": torch.randn(10, 3, 7, 7, generator=g), "conv2": torch.randn(5, 4, 3, 3, generator=g)},
        {"model": "toy", "source_dataset": "cifar100", "seeds": [0, 1]},
    )


def test_save_load_round_trip(tmp_path):
    bank = random_bank()
    path = save_bank(bank, tmp_path / "bank.safetensors")
    loaded = load_bank(path)
    assert loaded.layer_names == ["conv1", "conv2"]
    for name in bank.layer_names:
        assert torch.equal(loaded.filters(name), bank.filters(name))
        kh, kw = bank.filters(name).shape[-2:]
        assert torch.equal(loaded.layers[name]["slices"], bank.filters(name).reshape(-1, kh, kw))
    assert loaded.metadata["model"] == "toy" and loaded.metadata["seeds"] == [0, 1]
    assert loaded.metadata["content_hash"] == bank.content_hash() == loaded.content_hash()
    sidecar = json.loads(bank_sidecar_path(path).read_text())
    assert sidecar["content_hash"] == bank.content_hash() and sidecar["source_dataset"] == "cifar100"


def test_hash_depends_on_every_value():
    bank = random_bank()
    changed = {n: bank.filters(n).clone() for n in bank.layer_names}
    changed["conv2"][4, 3, 2, 2] += 1e-3
    assert FilterBank(changed).content_hash() != bank.content_hash()


def test_missing_bank_names_the_file(tmp_path):
    with pytest.raises(UserError, match="nope.safetensors"):
        load_bank(tmp_path / "nope.safetensors")


def test_garbage_bank_names_the_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(UserError, match="junk.safetensors"):
        load_bank(path)


def test_damaged_tensor_bytes_are_refused(tmp_path):
    path = save_bank(random_bank(), tmp_path / "bank.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor's data; the header stays valid
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt"):
        load_bank(path)


def test_sample_draws_bank_kernels_without_repeats():
    bank = random_bank()
    g = torch.Generator().manual_seed(3)
    slices = bank.sample("conv1", 20, "slice", g)
    assert slices.shape == (20, 7, 7)
    pool = bank.layers["conv1"]["slices"]
    rows = [int((pool == s).all(dim=(1, 2)).nonzero()) for s in slices]
    assert len(set(rows)) == 20
    filters = bank.sample("conv2", 8, "filter", g)  # more than the bank holds: drawn with repeats
    assert filters.shape == (8, 4, 3, 3)
    with pytest.raises(UserError, match="conv1, conv2"):
        bank.sample("conv9", 4)
    with pytest.raises(UserError, match="prior.view"):
        bank.sample("conv1", 4, "diagonal")


def test_match_layer_by_name_then_by_shape():
    bank = random_bank()
    assert bank.match_layer("conv1", (16, 3, 7, 7), "filter") == "conv1"
    assert bank.match_layer("features.0", (16, 3, 7, 7), "filter") == "conv1"  # the only 3x7x7 layer
    assert bank.match_layer("stem", (8, 1, 3, 3), "slice") == "conv2"
    with pytest.raises(UserError, match="conv1"):
        bank.match_layer("conv1", (16, 3, 5, 5), "slice")


def test_bank_from_state_dicts_stacks_networks():
    nets = [small_net(s) for s in (0, 1)]
    for net in nets:
        net(torch.zeros(1, 3, 12, 12))  # materialise the lazy linear
    sds = [net.state_dict() for net in nets]
    bank = bank_from_state_dicts(sds, [], {"model": "toy"})
    assert bank.layer_names == ["0", "3"]  # every 4-D weight, linear layers left out
    assert torch.equal(bank.filters("0"), torch.cat([sds[0]["0.weight"], sds[1]["0.weight"]]))
    assert bank.metadata["networks"] == 2
    ddp = {f"module.{k}": v for k, v in sds[0].items()}  # DDP prefixes are removed
    assert torch.equal(bank_from_state_dicts([ddp], ["0.weight"]).filters("0"), sds[0]["0.weight"])
    with pytest.raises(UserError, match="its conv layers are: 0, 3"):
        bank_from_state_dicts(sds, ["conv7"])


def write_run(run_dir, net: nn.Module, seed: int, acc: float, model: str = "toy", classes=("a", "b"),
              dataset: str = "cifar100", epochs: int = 3):
    run_dir.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(run_dir / "weights.safetensors"))
    (run_dir / "weights.json").write_text(json.dumps({"model": model, "options": {"width": 1}, "classes": list(classes)}))
    (run_dir / "metrics.json").write_text(json.dumps({"test_acc": acc}))
    cfg = {"seed": seed, "epochs": epochs, "data": {"dataset": dataset, "root": "/x"}, "optim": {"lr": 0.1}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_collect_bank_from_run_directories(tmp_path):
    nets = [small_net(s) for s in (0, 1)]
    for net in nets:
        net(torch.zeros(1, 3, 12, 12))
    write_run(tmp_path / "run0", nets[0], 0, 0.5)
    write_run(tmp_path / "run1", nets[1], 1, 0.7)
    out = tmp_path / "banks" / "toy.safetensors"
    # one run directory, one weights file: both forms are accepted
    sources = [tmp_path / "run0", tmp_path / "run1" / "weights.safetensors"]
    bank = collect_bank(sources, ["0"], out, {"note": "test", "seeds": None})  # None does not override
    loaded = load_bank(out)
    assert loaded.layer_names == ["0"]
    expected = torch.cat([nets[0].state_dict()["0.weight"], nets[1].state_dict()["0.weight"]])
    assert torch.equal(loaded.filters("0"), expected)
    meta = loaded.metadata
    assert meta["model"] == "toy" and meta["model_options"] == {"width": 1} and meta["source_dataset"] == "cifar100"
    assert meta["seeds"] == [0, 1] and meta["source_test_acc"] == [0.5, 0.7] and meta["note"] == "test"
    assert meta["recipe"]["optim"] == {"lr": 0.1} and "root" not in meta["recipe"]["data"]
    assert meta["content_hash"] == bank.content_hash()
    text = describe_bank(loaded)
    assert "toy" in text and "8 filters of 3x7x7" in text and "0.6000" in text


def test_collect_bank_refuses_bad_sources(tmp_path):
    net = small_net(0)
    net(torch.zeros(1, 3, 12, 12))
    write_run(tmp_path / "a", net, 0, 0.5, model="toy")
    write_run(tmp_path / "b", net, 1, 0.5, model="other")
    with pytest.raises(UserError, match="differ in model .*'toy'.*'other'"):
        collect_bank([tmp_path / "a", tmp_path / "b"], [], tmp_path / "x.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty"):
        collect_bank([tmp_path / "empty"], [], tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_collect_refuses_repeated_or_mixed_sources_and_keeps_source_order(tmp_path, capsys):
    from filterprior.commands import main

    net = small_net(0)
    net(torch.zeros(1, 3, 12, 12))
    write_run(tmp_path / "a", net, 0, 0.5, dataset="zoo")
    write_run(tmp_path / "b", net, 1, 0.5, classes=[str(i) for i in range(10)])
    out = tmp_path / "x.safetensors"
    cases = [
        ([tmp_path / "a", tmp_path / "a"], "are the same source model"),
        ([tmp_path / "a", tmp_path / "a" / "weights.safetensors"], "are the same source model"),
        ([tmp_path / "a", tmp_path / "b"], "differ in num_classes"),
    ]
    for sources, message in cases:
        assert main(["collect", "-o", str(out), "--from", *map(str, sources)]) == 2
        err = capsys.readouterr().err
        assert message in err and str(tmp_path / "a") in err and "Traceback" not in err, err
    assert not out.exists()
    write_run(tmp_path / "c", net, 2, 0.6, dataset="apes")
    assert main(["collect", "-o", str(out), "--from", str(tmp_path / "a"), str(tmp_path / "c")]) == 0
    meta = load_bank(out).metadata
    assert meta["source_dataset"] == ["zoo", "apes"] and meta["seeds"] == [0, 2]  # in the order of sources
    assert meta["sources"] == [str(tmp_path / "a"), str(tmp_path / "c")]


def write_two_recipes(tmp_path):
    """Runs a (seed 0, test acc 0.5, 3 epochs) and b (seed 1, 0.75, 7 epochs): two sources, two recipes."""
    for name, seed, acc, epochs in (("a", 0, 0.5, 3), ("b", 1, 0.75, 7)):
        net = small_net(seed)
        net(torch.zeros(1, 3, 12, 12))
        write_run(tmp_path / name, net, seed, acc, epochs=epochs)


def test_collect_from_repeated_records_every_source_and_each_recipe(tmp_path, capsys):
    """`--from A --from B` takes both sources, and sources trained with different recipes keep each one."""
    from filterprior.commands import main

    write_two_recipes(tmp_path)
    out = tmp_path / "x.safetensors"
    assert main(["collect", "-o", str(out), "--from", str(tmp_path / "a"), "--from", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    for meta in (load_bank(out).metadata, json.loads(bank_sidecar_path(out).read_text())):
        assert meta["sources"] == [str(tmp_path / "a"), str(tmp_path / "b")] and meta["networks"] == 2
        assert [r["epochs"] for r in meta["recipe"]] == [3, 7]  # one recipe per source, in their order
        assert meta["source_test_acc"] == [0.5, 0.75]


def test_bank_show_shows_what_the_sidecar_holds_and_checks_it(tmp_path, capsys):
    from filterprior.commands import main

    write_two_recipes(tmp_path)
    out = tmp_path / "x.safetensors"
    collect_bank([tmp_path / "a", tmp_path / "b"], ["0"], out)
    show = ["bank", "show", str(out), "--picture", str(tmp_path / "x.png")]
    assert main(show) == 0
    text = capsys.readouterr().out
    assert f"{tmp_path / 'a' / 'weights.safetensors'}: seed 0, test acc 0.5000, data cifar100" in text
    assert f"{tmp_path / 'b' / 'weights.safetensors'}: seed 1, test acc 0.7500" in text
    assert f"recipe of {tmp_path / 'a' / 'weights.safetensors'}: epochs=3 optim.lr=0.1 data.dataset=cifar100" in text
    assert f"recipe of {tmp_path / 'b' / 'weights.safetensors'}: epochs=7" in text
    assert f"full metadata (whole recipes): {bank_sidecar_path(out)}" in text
    sidecar = json.loads(bank_sidecar_path(out).read_text())
    sidecar["seeds"] = [5, 6]  # edited by hand: named, and the bank's own metadata still shown
    bank_sidecar_path(out).write_text(json.dumps(sidecar))
    assert main(show) == 0
    text = capsys.readouterr().out
    assert f"sidecar {bank_sidecar_path(out)} differs from the metadata stored inside the bank in seeds" in text
    assert "seed 0, test acc 0.5000" in text
    bank_sidecar_path(out).unlink()
    assert main(show) == 0
    assert f"no metadata sidecar {bank_sidecar_path(out)}" in capsys.readouterr().out


def test_collect_needs_at_least_one_source_to_train(tmp_path, capsys):
    from filterprior.commands import main

    assert main(["collect", "-o", str(tmp_path / "x.safetensors"), "--num-sources", "-1",
                 "--work-dir", str(tmp_path / "w"), "--data", "mini"]) == 2
    assert "--num-sources -1 is not valid: expected 1 or more" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_default_bank_path_is_none_without_a_bundled_bank():
    assert default_bank_path("no-such-model") is None
    assert default_bank_path(None) is None


def test_bundled_network_bank_rebuilds_filternet_s2():
    from filterprior.config import InitConfig, ModelConfig, TrainConfig
    from filterprior.models import create_model
    from filterprior.banks import apply_init_from_bank

    path = default_bank_path("filternet-s2", networks=True)
    assert path is not None and path.stat().st_size < 10_000_000
    bank = load_bank(path)  # checks the content hash
    assert bank.metadata["networks"] == 5 and bank.metadata["source_dataset"] == "cifar100"
    model = create_model("filternet-s2", num_classes=10)
    cfg = TrainConfig(model=ModelConfig(name="filternet-s2"), init=InitConfig(from_bank=True, mode="network"))
    filled = apply_init_from_bank(cfg, model, torch.Generator())
    assert list(filled) == ["0", "3", "6", "9"] and all(t.endswith("with its BatchNorm") for t in filled.values())


def test_network_mode_refuses_a_first_layer_bank_unless_the_layers_are_named(tmp_path):
    """A first-layer bank in network mode used to fill layer 0 alone and leave every other layer at random."""
    from filterprior.models import create_model
    from filterprior.banks import init_from_bank

    first_layer = default_bank_path("filternet-s2")  # the bundled bank of layer 0 only
    model = create_model("filternet-s2", num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UserError) as refused:
        init_from_bank(model, load_bank(first_layer), [], torch.Generator(), mode="network")
    message = str(refused.value)
    assert str(first_layer) in message and "needs a whole-network bank" in message
    assert "only the layers 0 of the model's conv layers 0, 3, 6, 9" in message
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # nothing changed
    # Named layers: exactly those are copied, from one network, and the rest is left alone.
    bank = load_bank(first_layer)
    filled = init_from_bank(model, bank, ["0"], torch.Generator().manual_seed(0), mode="network")
    source = int(filled["0"].split("network ")[1].split()[0])
    assert list(filled) == ["0"] and torch.equal(model[0].weight, bank.filters("0")[64 * source:64 * (source + 1)])
    assert torch.equal(model[3].weight, before["3.weight"])


def test_show_bank_draws_a_picture(tmp_path):
    path = save_bank(random_bank(), tmp_path / "bank.safetensors")
    text = show_bank(path, tmp_path / "bank.png", count=16)
    from PIL import Image

    with Image.open(tmp_path / "bank.png") as picture:  # a whole PNG, drawn at a visible size
        assert picture.format == "PNG" and min(picture.size) >= 100
    assert "conv1: 10 filters" in text


def test_show_bank_draws_each_kernel_once_when_the_layer_holds_fewer_than_asked(tmp_path, monkeypatch):
    from filterprior.figures import filters

    drawn = []
    monkeypatch.setattr(filters, "plot_filter_grid", lambda kernels, *a, **k: drawn.append(kernels))
    path = save_bank(random_bank(), tmp_path / "bank.safetensors")
    show_bank(path, tmp_path / "bank.png", count=64)
    [kernels] = drawn
    assert kernels.shape == (10, 3, 7, 7)  # conv1 holds 10 RGB filters: each drawn whole
    assert len({tuple(k.flatten().tolist()) for k in kernels}) == kernels.shape[0]  # no kernel twice


def test_collected_bank_keeps_each_networks_batchnorm_and_rebuilds_a_frozen_network(tmp_path):
    from filterprior.models import create_model
    from filterprior.banks import init_from_bank
    from filterprior.banks.freeze import FrozenBatchNorm2d

    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = create_model("filternet-s2", num_classes=2)
        for m in net.modules():  # trained-looking BatchNorms: every entry differs from its default
            if isinstance(m, nn.BatchNorm2d):
                for t in (m.weight, m.bias, m.running_mean):
                    t.data.normal_()
                m.running_var.data.uniform_(0.5, 2.0)
        write_run(tmp_path / f"run{seed}", net, seed, 0.5, model="filternet-s2")
        json_path = tmp_path / f"run{seed}" / "weights.json"
        json_path.write_text(json.dumps({"model": "filternet-s2", "options": {}, "classes": ["a", "b"]}))
        nets.append(net.eval())
    bank = collect_bank([tmp_path / "run0", tmp_path / "run1"], [], tmp_path / "nets.safetensors")
    assert bank.layer_names == ["0", "3", "6", "9"] and set(bank.norms) == set(bank.layer_names)
    assert torch.equal(bank.norms["3"]["running_var"][128:], nets[1][4].running_var)

    model = create_model("filternet-s2", num_classes=2)
    filled = init_from_bank(model, bank, [], torch.Generator().manual_seed(0), freeze="all", mode="network")
    source = int(filled["0"].split("network ")[1].split()[0])
    assert all(text.endswith("with its BatchNorm") for text in filled.values())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == 4
    model.load_state_dict({k: v for k, v in nets[source].state_dict().items() if "14." in k}, strict=False)  # head
    x = torch.randn(4, 3, 32, 32)
    model.train()  # frozen BatchNorms use the source's statistics even in training mode
    assert torch.allclose(model(x), nets[source](x), atol=1e-5)
    plain = create_model("filternet-s2", num_classes=2)
    plain.load_state_dict(model.state_dict())  # exported weights load into the plain model
    assert all(not p.requires_grad for name, p in model.named_parameters() if not name.startswith("14."))

    half = collect_bank([tmp_path / "run0", tmp_path / "run1"], [], tmp_path / "half.safetensors", dtype=torch.float16)
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (tmp_path / "nets.safetensors").stat().st_size
    assert torch.allclose(half.filters("6"), bank.filters("6"), rtol=1e-3, atol=1e-4)
    assert load_bank(tmp_path / "half.safetensors").content_hash() == half.metadata["content_hash"]


def test_bank_show_writes_its_picture_to_the_current_directory(tmp_path, capsys, monkeypatch):
    from filterprior.commands import main

    bundled = default_bank_path("filternet-s2")
    monkeypatch.chdir(tmp_path)
    assert main(["bank", "show", str(bundled)]) == 0
    assert f"picture of sample kernels: {tmp_path / bundled.with_suffix('.png').name}" in capsys.readouterr().out
    assert (tmp_path / bundled.with_suffix(".png").name).is_file()
    assert not bundled.with_suffix(".png").exists()  # nothing written inside the installed package


def test_a_bundled_bank_is_named_by_its_name_from_any_directory(tmp_path, monkeypatch):
    from filterprior.banks.bank import bundled_bank_names, resolve_bank
    from filterprior.banks.locate import init_bank_file, prior_bank_file
    from filterprior.config import apply_overrides, TrainConfig

    monkeypatch.chdir(tmp_path)
    bundled = default_bank_path("airnet", networks=True)
    assert "airnet-cifar100-networks" in bundled_bank_names() and "filternet-s2-cifar100" in bundled_bank_names()
    assert resolve_bank("airnet-cifar100-networks") == bundled
    assert resolve_bank("airnet-cifar100-networks.safetensors") == bundled
    cfg = apply_overrides(TrainConfig(), ["model.name=filternet-s2", "init.from_bank=true", "init.mode=network",
                                          "prior.name=l2-sp", "prior.bank=airnet-cifar100-networks"])
    assert prior_bank_file(cfg) == bundled and init_bank_file(cfg) == bundled  # not filternet-s2's own bank
    # A file of that name here is the user's own bank and wins; a path with folders is never a bundled name.
    (tmp_path / "airnet-cifar100-networks").write_bytes(b"mine")
    assert resolve_bank("airnet-cifar100-networks").resolve() == tmp_path / "airnet-cifar100-networks"
    assert resolve_bank("sub/airnet-cifar100-networks").resolve() == tmp_path / "sub" / "airnet-cifar100-networks"
    # Neither a file nor a bundled name: the error names the value and lists the bundled banks.
    with pytest.raises(UserError, match=r"filter bank no-such-bank does not exist.*airnet-cifar100-networks"):
        load_bank(resolve_bank("no-such-bank"))


def test_bank_show_takes_a_bundled_banks_name(tmp_path, capsys, monkeypatch):
    from filterprior.commands import main

    monkeypatch.chdir(tmp_path)
    assert main(["bank", "show", "airnet-cifar100-networks"]) == 0
    assert "airnet" in capsys.readouterr().out and (tmp_path / "airnet-cifar100-networks.png").is_file()
