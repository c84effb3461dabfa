"""The model zoo: every registered model trains on 32x32 input; exact sizes; registry errors; summaries."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from filterprior.errors import UserError
from filterprior.models import (
    conv_layers,
    count_parameters,
    create_model,
    flops_per_image,
    format_models_table,
    format_summary,
    list_models,
    register_model,
    summarize,
)

torch.set_num_threads(1)

EXPECTED_PARAMS = {
    "simplecnn": 600_746,
    "mynet-small": 80_090,
    "resnet18": 11_173_962,
    "resnet18-imagenet": 11_181_642,  # torchvision's resnet18 with a 10-class head
    "resnet-scaled": 4_435_082,
    # Wide ResNets: the exact counts of the authors' architecture (tests/test_wrn.py derives them by hand);
    # published: WRN-16-8 11.0 M, WRN-28-10 36.5 M
    "wrn-16-4": 2_748_890,
    "wrn-16-8": 10_961_370,
    "wrn-28-10": 36_479_194,
}


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str, num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, num_classes)
    logits.square().mean().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname


def test_zoo_has_the_documented_models() -> None:
    expected = {"filternet", "filternet-s2", "simplecnn", "mynet-small", "mynet-deep", "resnet18"}
    expected |= {"resnet-scaled", "resnet18-imagenet"}
    assert expected <= set(list_models())


@pytest.mark.parametrize("name,expected", sorted(EXPECTED_PARAMS.items()))
def test_exact_parameter_counts(name: str, expected: int) -> None:
    assert count_parameters(create_model(name)) == expected


def test_filternet_kernel_population() -> None:
    convs = conv_layers(create_model("filternet"))
    assert [c.in_channels * c.out_channels for _, c in convs] == [192, 8_192, 32_768]
    assert [c.kernel_size for _, c in convs] == [(7, 7), (5, 5), (3, 3)]


def test_filternet_flops_match_hand_count() -> None:
    per_conv = [(3, 64, 7), (64, 128, 5), (128, 256, 3)]
    expected = sum(2 * c_in * c_out * k * k * 32 * 32 for c_in, c_out, k in per_conv) + 2 * 256 * 10
    assert flops_per_image(create_model("filternet")) == expected


def test_filternet_batchnorm_option_adds_norms_and_drops_biases() -> None:
    model = create_model("filternet", batchnorm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 3
    assert all(conv.bias is None for _, conv in conv_layers(model))


def test_filternet_s2_shape_and_options() -> None:
    model = create_model("filternet-s2", widths=[8, 16, 16, 32], dropout=0.2)
    convs = conv_layers(model)
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for _, c in convs] == [
        (8, 7, 2), (16, 5, 2), (16, 5, 2), (32, 3, 2)
    ]
    assert all(c.bias is None for _, c in convs)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in model.modules())
    # 32 -> 16 -> 8 -> 4 -> 2: the FLOPs follow the strided maps.
    sizes = [16, 8, 4, 2]
    chans = [3, 8, 16, 16, 32]
    kernels = [7, 5, 5, 3]
    convs_flops = sum(2 * chans[i] * chans[i + 1] * kernels[i] ** 2 * sizes[i] ** 2 for i in range(4))
    expected = convs_flops + 2 * 32 * 10
    assert flops_per_image(model) == expected


def test_conv_layers_follow_module_order() -> None:
    names = [name for name, _ in conv_layers(create_model("resnet18"))]
    assert names[0] == "0.0"  # the stem
    assert names[1:4] == ["1.0.conv1", "1.0.conv2", "1.1.conv1"]
    assert "2.0.shortcut.0" in names
    assert names.index("2.0.conv2") < names.index("2.0.shortcut.0") < names.index("2.1.conv1")
    assert names == [n for n, m in create_model("resnet18").named_modules() if isinstance(m, nn.Conv2d)]


def test_resnet18_imagenet_layout_names_and_flops() -> None:
    model = create_model("resnet18-imagenet")
    convs = conv_layers(model)
    # torchvision's module names, so state dicts carry torchvision's keys.
    assert [name for name, _ in convs[:3]] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    assert [name for name, _ in convs if "downsample" in name] == [
        "layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0"
    ]
    assert "fc.weight" in model.state_dict() and "layer4.1.bn2.running_var" in model.state_dict()
    stem = convs[0][1]
    assert (stem.kernel_size, stem.stride, stem.padding) == ((7, 7), (2, 2), (3, 3))
    # 32x32: stem -> 16, max-pool -> 8, then stages at 8, 4, 2, 1.
    stem_flops = 2 * 3 * 64 * 49 * 16**2
    stage_flops = 0
    for c_in, c_out, side in [(64, 64, 8), (64, 128, 4), (128, 256, 2), (256, 512, 1)]:
        stage_flops += 2 * side**2 * 9 * (c_in * c_out + 3 * c_out * c_out)  # four 3x3 convs
        if c_in != c_out:
            stage_flops += 2 * side**2 * c_in * c_out  # the 1x1 downsample
    assert flops_per_image(model) == stem_flops + stage_flops + 2 * 512 * 10


def test_resnet18_imagenet_uses_torchvisions_init() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18-imagenet")
    conv = model.layer4[1].conv2  # 512 -> 512, 3x3: kaiming normal, fan_out = 512 * 9
    expected_std = (2 / (512 * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.02)
    assert conv.weight.mean().abs().item() < 0.1 * expected_std
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 20 and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)


def test_resnet_scaled_default_layout() -> None:
    model = create_model("resnet-scaled")
    shortcuts = [(n, c) for n, c in conv_layers(model) if "shortcut" in n]
    # Only the block where 128 -> 256 channels and stride 2 has a conv shortcut: a 3x3 one.
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for _, c in shortcuts] == [
        (128, 256, (3, 3), (2, 2))
    ]
    assert len(conv_layers(model)) == 1 + 2 * 6 + 1


def test_resnet_scaled_options_change_shape() -> None:
    model = create_model(
        "resnet-scaled", N=3, C1=8, B=[1, 1, 2], F=[3, 5, 3], K=1, P=2, dropout=0.1, dropblock=0.1
    )
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert head.in_features == 32 * 2 * 2  # C_N * P * P
    model.eval()  # DropBlock and dropout are off in eval: the output is deterministic
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))


def test_resnet_scaled_param_budget() -> None:
    assert count_parameters(create_model("resnet-scaled", param_budget=5_000_000)) == 4_435_082
    with pytest.raises(UserError, match=r"4,435,082 parameters.*param_budget of 4,000,000"):
        create_model("resnet-scaled", param_budget=4_000_000)


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"B": [3]}, "'B'"),
        ({"F": [3, 4]}, "odd"),
        ({"P": 64}, "'P'"),
        ({"dropout": 1.5}, "'dropout'"),
        ({"N": 0}, "'N'"),
    ],
)
def test_resnet_scaled_rejects_bad_options(options: dict, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        create_model("resnet-scaled", **options)


def test_unknown_model_lists_registered_names() -> None:
    with pytest.raises(UserError) as info:
        create_model("resnet9000")
    message = str(info.value)
    assert "resnet9000" in message
    assert all(name in message for name in list_models())


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(UserError) as info:
        create_model("filternet-s2", width=[1, 2, 3, 4])
    message = str(info.value)
    assert "'width'" in message and "widths" in message and "dropout" in message


def test_bad_option_values_and_num_classes() -> None:
    with pytest.raises(UserError, match="widths"):
        create_model("filternet-s2", widths=[64, 128])
    with pytest.raises(UserError, match="num_classes"):
        create_model("simplecnn", num_classes=0)


def test_register_model_rejects_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="simplecnn"):
        register_model("simplecnn")(lambda num_classes=10, in_channels=3: nn.Linear(1, num_classes))


def test_in_channels_option() -> None:
    model = create_model("mynet-small", in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    # the dummy image follows the first conv's in_channels: two input channels fewer take off exactly
    # their share of the first conv (8 filters of 5x5 at 28x28 outputs, 2 FLOPs a multiply-add)
    assert flops_per_image(create_model("mynet-small")) - flops_per_image(model) == 2 * 2 * 8 * 5 * 5 * 28 * 28


def test_flops_are_positive_and_leave_training_mode_alone() -> None:
    model = create_model("mynet-deep")
    model.train()
    assert flops_per_image(model) > 0
    assert model.training


def test_summarize_rows_and_totals() -> None:
    model = create_model("mynet-small")
    info = summarize(model, batch_size=4)
    assert sum(row["params"] for row in info["layers"]) == info["params"] == 80_090
    first = info["layers"][0]
    assert first["type"] == "Conv2d" and first["output_shape"] == [4, 8, 28, 28]
    assert info["layers"][-1]["output_shape"] == [4, 10]
    per_image = sum(torch.Size(r["output_shape"][1:]).numel() for r in info["layers"])
    assert info["activation_mb"] == pytest.approx(per_image * 4 * 4 / 1024**2)
    assert info["param_mb"] == pytest.approx(80_090 * 4 / 1024**2)
    assert info["flops_per_image"] == flops_per_image(model)


def test_format_summary_and_models_table() -> None:
    text = format_summary("simplecnn", batch_size=8)
    assert "600,746" in text and "Conv2d" in text and "8x32x33x33" in text
    rows = json.loads(format_models_table(as_json=True))
    assert [r["name"] for r in rows] == list_models()
    by_name = {r["name"]: r for r in rows}
    for name, expected in EXPECTED_PARAMS.items():
        assert by_name[name]["params"] == expected
    assert all(r["flops_per_image"] > 0 for r in rows)
    assert "resnet-scaled" in format_models_table()


def test_summary_rejects_bad_sizes() -> None:
    with pytest.raises(UserError, match="batch_size"):
        summarize(create_model("simplecnn"), batch_size=0)
    with pytest.raises(UserError, match="image_size 8"):
        summarize(create_model("mynet-small"), image_size=8)


def test_dropblock_drops_squares_at_about_the_asked_rate() -> None:
    from filterprior.models.resnet_scaled import DropBlock2d

    torch.manual_seed(0)
    block = DropBlock2d(0.2, block_size=3)
    out = block(torch.ones(8, 16, 16, 16))
    assert 0.15 < (out == 0).float().mean().item() < 0.25
    assert out.mean().item() == pytest.approx(1.0, rel=1e-5)  # survivors are rescaled
    block.eval()
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), x)
