"""Strong augmentation policies: each operation equals PIL's (what the policies were searched with), the
batched application equals one image at a time, the draws follow the published policies, per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from filterprior.data.augment import (
    CIFAR10_POLICY,
    OP_INDEX,
    OPS,
    RANDOM_OPS,
    Policy,
    apply_ops,
    magnitude_bins,
)
from filterprior.errors import UserError

torch.set_num_threads(1)


def natural_images(n: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth colour images (upsampled noise), N x H x W x 3 uint8: edges and gradients like photos."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return np.stack([np.array(Image.fromarray(a).resize((size, size), Image.BILINEAR)) for a in small])


def ours(images: np.ndarray, name: str, magnitude: float) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    ops = torch.full((len(images), 1), OP_INDEX[name])
    mags = torch.full((len(images), 1), float(magnitude))
    out = apply_ops(x, ops, mags)
    return (out * 255).round().permute(0, 2, 3, 1).numpy().astype(int)


def pil(images: np.ndarray, fn) -> np.ndarray:
    return np.stack([np.array(fn(Image.fromarray(a))) for a in images]).astype(int)


# (operation, signed magnitude as the policies store it, the same operation in PIL)
PIL_CASES = [
    ("brightness", 0.6, lambda im: ImageEnhance.Brightness(im).enhance(1.6)),
    ("color", -0.7, lambda im: ImageEnhance.Color(im).enhance(0.3)),
    ("contrast", 0.8, lambda im: ImageEnhance.Contrast(im).enhance(1.8)),
    ("sharpness", 0.9, lambda im: ImageEnhance.Sharpness(im).enhance(1.9)),
    ("sharpness", -0.5, lambda im: ImageEnhance.Sharpness(im).enhance(0.5)),
    ("posterize", 5, lambda im: ImageOps.posterize(im, 5)),
    ("solarize", 100, lambda im: ImageOps.solarize(im, 100)),
    ("auto_contrast", 0, ImageOps.autocontrast),
    ("equalize", 0, ImageOps.equalize),
    ("invert", 0, ImageOps.invert),
    ("translate_x", 5.7, lambda im: im.transform(im.size, Image.AFFINE, (1, 0, -5, 0, 1, 0), resample=Image.NEAREST)),
    ("translate_y", -3, lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, 3), resample=Image.NEAREST)),
    ("shear_x", 0.3, lambda im: im.transform(im.size, Image.AFFINE, (1, 0.3, 0, 0, 1, 0), resample=Image.NEAREST)),
    ("shear_y", -0.99, lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, -0.99, 1, 0), resample=Image.NEAREST)),
    ("rotate", 30, lambda im: im.rotate(30, resample=Image.NEAREST)),
    ("rotate", -100, lambda im: im.rotate(-100, resample=Image.NEAREST)),  # at multiples of 45 degrees
    # the diagonals fall on exact ties between two pixels, which PIL and we may break differently
]


@pytest.mark.parametrize("name,magnitude,fn", PIL_CASES, ids=[f"{c[0]}{c[1]}" for c in PIL_CASES])
def test_each_operation_is_pils_within_one_grey_level(name, magnitude, fn):
    images = natural_images()
    a, b = ours(images, name, magnitude), pil(images, fn)
    assert np.abs(a - b).max() <= 1  # PIL rounds every step to 8 bits; these stay in float
    assert not np.array_equal(a, images.astype(int))  # the operation did something


def test_identity_and_policy_outputs_stay_in_range_and_leave_the_input_alone():
    images = torch.from_numpy(natural_images(8)).permute(0, 3, 1, 2).float() / 255
    before = images.clone()
    same = apply_ops(images, torch.zeros((8, 2), dtype=torch.int64), torch.zeros((8, 2)))
    assert torch.equal(same, images)
    for name in ("autoaugment", "randaugment", "trivialaugment"):
        policy = Policy(name, n=3, m=20)
        ops, mags = policy.draw(8, torch.Generator().manual_seed(1), 32, 32)
        out = policy.apply(images, ops, mags)
        assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
    assert torch.equal(images, before)


def test_a_batch_equals_its_images_one_at_a_time():
    """The grouping by operation (and one warp for all geometry) gives each image exactly its own ops."""
    images = torch.from_numpy(natural_images(48, seed=3)).permute(0, 3, 1, 2).float() / 255
    policy = Policy("randaugment", n=3, m=14)
    ops, mags = policy.draw(48, torch.Generator().manual_seed(5), 32, 32)
    assert len(ops.unique()) >= 12  # the batch mixes nearly every operation
    batched = apply_ops(images, ops, mags)
    single = torch.cat([apply_ops(images[i : i + 1], ops[i : i + 1], mags[i : i + 1]) for i in range(48)])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-6)


def test_cifar10_policy_is_the_published_one_as_kornia_also_transcribed_it():
    from kornia.augmentation.auto.autoaugment.autoaugment import cifar10_policy

    assert [tuple(map(tuple, sub)) for sub in cifar10_policy] == [tuple(sub) for sub in CIFAR10_POLICY]
    assert len(CIFAR10_POLICY) == 25


def test_magnitudes_follow_torchvision():
    assert magnitude_bins("translate_x", 10, 32, 32)[-1].item() == pytest.approx(150 / 331 * 32)
    assert magnitude_bins("posterize", 10, 32, 32).tolist() == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    assert magnitude_bins("rotate", 31, 32, 32, wide=True)[-1].item() == 135
    assert magnitude_bins("translate_y", 31, 32, 32, wide=True)[-1].item() == 32
    assert magnitude_bins("posterize", 31, 32, 32, wide=True)[-1].item() == 2
    assert magnitude_bins("equalize", 31, 32, 32) is None


def test_autoaugment_draws_one_subpolicy_per_image_at_its_probabilities():
    count = 50_000
    ops, mags = Policy("autoaugment").draw(count, torch.Generator().manual_seed(0), 32, 32)
    # Sub-policy 1 is (rotate 0.7 bin 2, translate_x 0.3 bin 9): no other sub-policy rotates, and its
    # rotation is 30 * 2 / 9 degrees with either sign.
    rotated = ops[:, 0] == OP_INDEX["rotate"]
    torch.testing.assert_close(mags[rotated, 0].abs(), torch.full((int(rotated.sum()),), 30 * 2 / 9))
    share = rotated.float().mean().item()
    assert share == pytest.approx(0.7 / 25, rel=0.1)
    assert (mags[rotated, 0] > 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    # Invert is a second step twice: at probability 0.0 (sub-policy 14) and 0.1 (sub-policy 23).
    assert (ops[:, 1] == OP_INDEX["invert"]).float().mean().item() == pytest.approx(0.1 / 25, rel=0.2)


def test_randaugment_and_trivialaugment_pick_per_image_with_their_magnitudes():
    gen = torch.Generator().manual_seed(0)
    ops, mags = Policy("randaugment", n=2, m=9).draw(20_000, gen, 32, 32)
    assert ops.shape == (20_000, 2)
    assert set(ops.unique().tolist()) == {OP_INDEX[n] for n in RANDOM_OPS}
    rotate = ops == OP_INDEX["rotate"]
    torch.testing.assert_close(mags[rotate].abs(), torch.full((int(rotate.sum()),), 9.0))  # 30 * 9 / 30
    ops, mags = Policy("trivialaugment").draw(20_000, gen, 32, 32)
    rotate = ops[:, 0] == OP_INDEX["rotate"]
    assert mags[rotate, 0].abs().max().item() == pytest.approx(135.0)
    assert len(mags[rotate, 0].abs().unique()) == 31  # a magnitude bin drawn per image
    assert ops[:128].unique().numel() >= 12  # one batch already holds nearly every operation


def test_draws_are_a_function_of_the_generator_seed():
    policy = Policy("trivialaugment")
    a = policy.draw(64, torch.Generator().manual_seed(7), 32, 32)
    b = policy.draw(64, torch.Generator().manual_seed(7), 32, 32)
    c = policy.draw(64, torch.Generator().manual_seed(8), 32, 32)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("kwargs,fragment", [
    ({"name": "autoaugmnt"}, "autoaugmnt"), ({"name": "randaugment", "n": 0}, "n"),
    ({"name": "randaugment", "m": 31}, "0..30"),
])
def test_bad_policy_settings_are_user_errors(kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        Policy(**kwargs)


def test_every_operation_has_an_implementation():
    images = torch.from_numpy(natural_images(len(OPS))).permute(0, 3, 1, 2).float() / 255
    ops = torch.arange(len(OPS)).view(-1, 1)
    out = apply_ops(images, ops, torch.full((len(OPS), 1), 3.0))
    changed = [(out[i] != images[i]).any().item() for i in range(len(OPS))]
    assert changed == [name != "identity" for name in OPS]


# ------------------------------------------------------------------------- in the tensor-resident loader


def policy_loader(policy: str, seed: int = 0, **kwargs):
    from filterprior.data import AugmentConfig, TensorLoader

    images = natural_images(40, seed=2)
    augment = AugmentConfig(crop_padding=2, flip=True, policy=policy, **kwargs)
    return TensorLoader(images, np.arange(40) % 10, 16, shuffle=True, augment=augment, seed=seed,
                        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def epoch_batches(loader, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader.set_epoch(epoch)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_loader_policy_is_a_function_of_seed_and_epoch_and_keeps_order_crops_and_flips():
    plain = epoch_batches(policy_loader("none"), 3)
    strong = policy_loader("trivialaugment")
    x3, y3 = epoch_batches(strong, 3)
    assert torch.equal(y3, plain[1])  # the policy is drawn last: the order is the one without it
    again = epoch_batches(policy_loader("trivialaugment"), 3)
    assert torch.equal(x3, again[0])
    assert not torch.equal(x3, epoch_batches(strong, 4)[0])
    assert not torch.equal(x3, epoch_batches(policy_loader("trivialaugment", seed=1), 3)[0])
    assert 0 <= x3.min() and x3.max() <= 1
    # images whose drawn operation was the identity are exactly the cropped and flipped plain ones
    same = (x3 == plain[0]).flatten(1).all(1)
    assert 0 < same.sum() < len(same)


def test_loader_rejects_a_bad_policy():
    with pytest.raises(UserError, match="RandAugment magnitude m must be in 0..30, got 40"):
        policy_loader("randaugment", randaugment_m=40)
