"""Wide ResNets: the authors' architecture, counted by hand; options; pre-activation order; bad options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from filterprior.errors import UserError
from filterprior.models import conv_layers, count_parameters, create_model
from filterprior.models.wrn import PreActBlock

torch.set_num_threads(1)


def reference_count(depth: int, widen: int, num_classes: int = 10) -> int:
    """Parameters of WRN-depth-widen as Zagoruyko & Komodakis define it, summed layer by layer: a 3x3 stem
    to 16 channels; per block BN(in), conv3x3(in->out), BN(out), conv3x3(out->out), plus a 1x1 shortcut
    conv where in != out; a final BN and a linear head with bias. Convs carry no bias."""
    n = (depth - 4) // 6
    widths = [16 * widen, 32 * widen, 64 * widen]
    total = 3 * 16 * 9
    c_in = 16
    for c_out in widths:
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out
            total += c_in * c_out if c_in != c_out else 0
            c_in = c_out
    return total + 2 * c_in + c_in * num_classes + num_classes


@pytest.mark.parametrize("name,depth,widen,published_m", [
    ("wrn-16-4", 16, 4, 2.7), ("wrn-16-8", 16, 8, 11.0), ("wrn-28-10", 28, 10, 36.5),
])
def test_parameter_counts_are_the_reference_architecture_and_the_published_figures(name, depth, widen, published_m):
    count = count_parameters(create_model(name))
    assert count == reference_count(depth, widen)
    assert round(count / 1e6, 1) == published_m


def test_depth_widen_and_dropout_options():
    model = create_model("wrn-16-4", depth=10, widen=2, dropout=0.3, num_classes=7)
    assert count_parameters(model) == reference_count(10, 2, num_classes=7)
    blocks = [m for m in model.modules() if isinstance(m, PreActBlock)]
    assert len(blocks) == 3  # one block per group at depth 10
    assert all(isinstance(b.dropout, nn.Dropout) and b.dropout.p == 0.3 for b in blocks)
    assert all(isinstance(b.dropout, nn.Identity) for b in create_model("wrn-16-4").modules() if isinstance(b, PreActBlock))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7)
    assert torch.equal(model(x), model(x))  # dropout is off in eval mode


def test_resolution_halves_at_groups_two_and_three_with_conv_shortcuts():
    convs = conv_layers(create_model("wrn-16-4"))
    strided = [(name, c.stride) for name, c in convs if c.stride != (1, 1)]
    assert [name for name, _ in strided] == ["block2.0.conv1", "block2.0.shortcut", "block3.0.conv1", "block3.0.shortcut"]
    shortcuts = [name for name, c in convs if c.kernel_size == (1, 1)]
    assert shortcuts == ["block1.0.shortcut", "block2.0.shortcut", "block3.0.shortcut"]
    assert all(c.bias is None for _, c in convs)


def test_block_is_pre_activation_and_the_shortcut_sees_the_activated_input():
    torch.manual_seed(0)
    block = PreActBlock(4, 8, stride=2, dropout=0.0).eval()
    x = torch.randn(2, 4, 8, 8)
    activated = torch.relu(block.bn1(x))
    inner = block.conv2(torch.relu(block.bn2(block.conv1(activated))))
    torch.testing.assert_close(block(x), inner + block.shortcut(activated))
    same = PreActBlock(8, 8, stride=1, dropout=0.0).eval()
    y = torch.randn(2, 8, 4, 4)
    inner = same.conv2(torch.relu(same.bn2(same.conv1(torch.relu(same.bn1(y))))))
    torch.testing.assert_close(same(y), inner + y)  # identity shortcut of the raw input


@pytest.mark.parametrize("options,fragment", [
    ({"depth": 18}, "6n \\+ 4"), ({"depth": 4}, "'depth'"), ({"widen": 0}, "'widen'"), ({"dropout": 1.0}, "'dropout'"),
])
def test_bad_options_are_user_errors(options, fragment):
    with pytest.raises(UserError, match=fragment):
        create_model("wrn-16-8", **options)
