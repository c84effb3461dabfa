"""TensorLoader: batches, normalisation, batched crop/flip/cutout, per-(seed, epoch) determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from filterprior.data import AugmentConfig, TensorLoader, channel_stats
from filterprior.errors import UserError

H = W = 12
PLAIN = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # output = pixel / 255: easy to read back


def position_images(n: int) -> np.ndarray:
    """Every pixel says where it is: R = 10 + row * 20, G = 10 + col * 20, B = 255 (no pixel is 0)."""
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    image = np.stack([10 + rows * 20, 10 + cols * 20, np.full_like(rows, 255)], axis=-1).astype(np.uint8)
    return np.repeat(image[None], n, axis=0)


def as_pixels(x: torch.Tensor) -> np.ndarray:
    """Normalised batch with PLAIN stats back to uint8 N x H x W x 3."""
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def collect(loader: TensorLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_shapes_dtypes_and_length():
    images = np.random.default_rng(0).integers(0, 256, (10, H, W, 3), dtype=np.uint8)
    labels = np.arange(10) % 3
    loader = TensorLoader(images, labels, 4, shuffle=True, augment=AugmentConfig(), **PLAIN)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, H, W), (4, 3, H, W), (2, 3, H, W)]
    assert all(x.dtype == torch.float32 and y.dtype == torch.int64 for x, y in batches)
    assert loader.images.dtype == torch.uint8 and loader.images.shape == (10, 3, H, W)
    dropping = TensorLoader(images, labels, 4, shuffle=False, augment=None, drop_last=True, **PLAIN)
    assert len(dropping) == len(list(dropping)) == 2
    _, ys = collect(loader)
    assert sorted(ys.tolist()) == sorted(labels.tolist())  # each image once per epoch


def test_normalisation_values_and_order_without_shuffle():
    images = np.zeros((3, H, W, 3), np.uint8)
    images[..., 0], images[..., 1], images[..., 2] = 51, 102, 255
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)
    loader = TensorLoader(images, [2, 0, 1], 2, shuffle=False, augment=None, mean=mean, std=std)
    x, y = collect(loader)
    assert y.tolist() == [2, 0, 1]
    expected = [(51 / 255 - 0.1) / 0.5, (102 / 255 - 0.2) / 0.25, (1.0 - 0.3) / 0.2]
    for c in range(3):
        torch.testing.assert_close(x[:, c], torch.full((3, H, W), expected[c]), rtol=0, atol=1e-5)


def test_channel_stats():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[0] = 255  # half the pixels 1.0, half 0.0 -> mean 0.5, std 0.5
    mean, std = channel_stats(images)
    assert mean == pytest.approx((0.5,) * 3) and std == pytest.approx((0.5,) * 3)
    rand = np.random.default_rng(1).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    mean, std = channel_stats(rand, chunk=7)
    as_float = rand.reshape(-1, 3) / 255.0
    assert mean == pytest.approx(tuple(as_float.mean(0)), abs=1e-12)
    assert std == pytest.approx(tuple(as_float.std(0)), abs=1e-12)
    with pytest.raises(UserError, match="uint8"):
        channel_stats(rand.astype(np.float32))


def test_flip_mirrors_the_known_image():
    images = position_images(64)
    augment = AugmentConfig(crop_padding=0, flip=True)
    loader = TensorLoader(images, np.zeros(64), 64, shuffle=False, augment=augment, **PLAIN)
    out = as_pixels(next(iter(loader))[0])
    flipped = [bool((o == images[0][:, ::-1]).all()) for o in out]
    unchanged = [bool((o == images[0]).all()) for o in out]
    assert all(f != u for f, u in zip(flipped, unchanged))  # each is exactly one of the two
    assert 10 < sum(flipped) < 54


def test_crop_shifts_content_by_at_most_the_padding():
    pad = 3
    images = position_images(200)
    augment = AugmentConfig(crop_padding=pad, flip=False)
    loader = TensorLoader(images, np.zeros(200), 50, shuffle=True, augment=augment, **PLAIN)
    out = as_pixels(collect(loader)[0])
    shifts = set()
    for o in out:
        inside = o[..., 2] == 255  # padding is zero, real pixels have B = 255
        ys, xs = np.nonzero(inside)
        dy = (o[ys[0], xs[0], 0] - 10) // 20 - ys[0]  # which source row the first real pixel shows
        dx = (o[ys[0], xs[0], 1] - 10) // 20 - xs[0]
        assert abs(dy) <= pad and abs(dx) <= pad
        src = np.zeros_like(o)
        for y, x in zip(ys, xs):
            src[y, x] = images[0][y + dy, x + dx]
        assert (o == src).all()  # every pixel is the source shifted by (dy, dx), the rest zero
        assert inside.sum() == (H - abs(dy)) * (W - abs(dx))
        shifts.add((int(dy), int(dx)))
    assert len(shifts) > 20  # of the 49 possible offsets


def test_cutout_zeroes_a_square():
    size = 5
    images = np.full((40, H, W, 3), 255, np.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    loader = TensorLoader(images, np.zeros(40), 40, shuffle=False,
                          augment=AugmentConfig(crop_padding=0, flip=False, cutout=size), mean=mean, std=std)
    x = next(iter(loader))[0]
    for c in range(3):
        cut = torch.isclose(x[:, c], torch.tensor(-mean[c] / std[c]))
        kept = torch.isclose(x[:, c], torch.tensor((1 - mean[c]) / std[c]))
        assert (cut | kept).all()
        for mask in cut:
            rows, cols = torch.nonzero(mask, as_tuple=True)
            assert mask.sum() == size * size
            assert rows.max() - rows.min() == size - 1 and cols.max() - cols.min() == size - 1


def make_loader(seed: int = 0) -> TensorLoader:
    images = np.random.default_rng(2).integers(0, 256, (30, H, W, 3), dtype=np.uint8)
    augment = AugmentConfig(crop_padding=2, cutout=3)
    return TensorLoader(images, np.arange(30), 8, shuffle=True, augment=augment, seed=seed, **PLAIN)


def test_each_epoch_is_a_function_of_seed_and_epoch():
    a, b = make_loader(), make_loader()
    a.set_epoch(3)
    b.set_epoch(3)
    xa, ya = collect(a)
    xb, yb = collect(b)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    b.set_epoch(3)
    assert torch.equal(collect(b)[0], xa)  # replaying epoch 3 (a resume) gives the same batches
    b.set_epoch(4)
    x4, y4 = collect(b)
    assert not torch.equal(y4, ya) and not torch.equal(x4, xa)
    other_seed = make_loader(seed=1)
    other_seed.set_epoch(3)
    assert not torch.equal(collect(other_seed)[1], ya)
    fresh = make_loader()
    collect(fresh)  # a full pass advances to the next epoch
    fresh_next = collect(fresh)
    first_epoch_1 = make_loader()
    first_epoch_1.set_epoch(1)
    assert torch.equal(fresh_next[0], collect(first_epoch_1)[0])


def test_bad_arguments_raise_user_errors():
    images = np.zeros((4, H, W, 3), np.uint8)
    with pytest.raises(UserError, match="std must be positive"):
        TensorLoader(images, np.zeros(4), 2, shuffle=False, augment=None, mean=(0, 0, 0), std=(1, 0, 1))
    with pytest.raises(UserError, match="3 values"):
        TensorLoader(images, np.zeros(4), 2, shuffle=False, augment=None, mean=(0, 0), std=(1, 1, 1))
    with pytest.raises(UserError, match="uint8"):
        TensorLoader(images.astype(np.float32), np.zeros(4), 2, shuffle=False, augment=None, **PLAIN)
    with pytest.raises(UserError, match="cutout"):
        TensorLoader(images, np.zeros(4), 2, shuffle=False, augment=AugmentConfig(cutout=H + 1), **PLAIN)
    empty = TensorLoader(images[:0], np.zeros(0), 2, shuffle=True, augment=AugmentConfig(), **PLAIN)
    assert len(empty) == 0 and list(empty) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_same_batches_as_cpu():
    images = np.random.default_rng(3).integers(0, 256, (30, H, W, 3), dtype=np.uint8)
    kwargs = dict(shuffle=True, augment=AugmentConfig(crop_padding=2, cutout=3), seed=5, **PLAIN)
    cpu = collect(TensorLoader(images, np.arange(30), 8, **kwargs))
    gpu = collect(TensorLoader(images, np.arange(30), 8, device="cuda", **kwargs))
    assert torch.equal(cpu[1], gpu[1].cpu())
    torch.testing.assert_close(cpu[0], gpu[0].cpu())
