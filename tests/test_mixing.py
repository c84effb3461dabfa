"""mixup and CutMix: what a mixed batch holds, the two-label loss, the dominant label, (seed, epoch) draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from filterprior.data.mixing import BatchMixer, MixConfig, Targets
from filterprior.errors import UserError


def constant_images(n: int = 8, size: int = 16) -> torch.Tensor:
    """Image i is the constant i: a mixed pixel tells which images it came from and in what share."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).clone()


def test_mixup_blends_each_image_with_its_partner_at_lam():
    images, labels = constant_images(), torch.arange(8)
    mixed, targets = BatchMixer(MixConfig(mixup=1.0), seed=0)(images, labels)
    assert targets.partner is not None and 0 < targets.lam < 1
    expected = targets.lam * labels.float() + (1 - targets.lam) * targets.partner.float()
    torch.testing.assert_close(mixed[:, 0, 0, 0], expected)
    assert sorted(targets.partner.tolist()) == labels.tolist()  # a permutation of the batch


def test_cutmix_pastes_one_box_and_lam_is_the_uncovered_share():
    images, labels = constant_images(size=32), torch.arange(8)
    mixed, targets = BatchMixer(MixConfig(cutmix=1.0), seed=3)(images, labels)
    own = (mixed == labels.float().view(-1, 1, 1, 1)).float().mean(dim=(1, 2, 3))
    moved = labels != targets.partner
    torch.testing.assert_close(own[moved], torch.full((int(moved.sum()),), targets.lam))
    assert 0 < targets.lam < 1
    pasted = (mixed != images)[moved][0, 0]  # one rectangle
    rows, cols = pasted.any(1).nonzero().squeeze(1), pasted.any(0).nonzero().squeeze(1)
    assert pasted.sum() == len(rows) * len(cols)


def test_loss_is_the_weighted_sum_and_accuracy_counts_the_dominant_label():
    torch.manual_seed(0)
    logits = torch.randn(4, 5)
    a, b = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 3, 2, 1])
    t = Targets(a, b, 0.3)
    expected = 0.3 * F.cross_entropy(logits, a, label_smoothing=0.1) + 0.7 * F.cross_entropy(logits, b, label_smoothing=0.1)
    torch.testing.assert_close(t.loss(logits, 0.1), expected)
    assert torch.equal(t.dominant(), b) and torch.equal(Targets(a, b, 0.5).dominant(), a)
    assert torch.equal(Targets(a).loss(logits), F.cross_entropy(logits, a))


def test_draws_depend_on_seed_and_epoch_only_and_prob_skips_batches():
    images, labels = constant_images(), torch.arange(8)

    def epoch(seed: int, e: int) -> list[float]:
        mixer = BatchMixer(MixConfig(mixup=0.4, cutmix=1.0, prob=0.5), seed=seed)
        mixer.set_epoch(e)
        return [mixer(images, labels)[1].lam for _ in range(40)]

    assert epoch(0, 2) == epoch(0, 2)
    assert epoch(0, 2) != epoch(0, 3) and epoch(0, 2) != epoch(1, 2)
    unmixed = sum(lam == 1.0 for lam in epoch(0, 2))
    assert 10 <= unmixed <= 30  # about half the batches at prob 0.5
    off = BatchMixer(MixConfig(), seed=0)
    same, targets = off(images, labels)
    assert same is images and targets.partner is None


@pytest.mark.parametrize("kwargs,fragment", [({"mixup": -1.0}, "mixup"), ({"cutmix": float("nan")}, "cutmix"),
                                             ({"prob": 1.5}, "probability")])
def test_bad_settings_are_user_errors(kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        MixConfig(**kwargs)
