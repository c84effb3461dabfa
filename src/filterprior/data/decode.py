"""Turn image bytes into uint8 RGB arrays of one size (Pillow)."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, UnidentifiedImageError

from filterprior.errors import UserError


def to_rgb_size(image: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 array of size x size; other sizes are resized with bilinear filtering.

    Pillow's resize widens the filter when shrinking, so downscaling is antialiased. Non-square images
    are stretched to a square (no crop), so nothing of the image is lost.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def decode_images(items: list[tuple[str, bytes]], size: int) -> np.ndarray:
    """Decode (name, bytes) pairs into one N x size x size x 3 uint8 array.

    Runs in this process: decoding a 32x32 image takes ~60 us, so all of CIFAR-10 takes a few seconds and
    a process pool gained under 10 % here (the bytes must be pickled to the workers and back).
    An image Pillow cannot read stops the load with a UserError naming it.
    """
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    for i, (name, data) in enumerate(items):
        try:
            with Image.open(io.BytesIO(data)) as image:
                out[i] = to_rgb_size(image, size)
        except UnidentifiedImageError:
            raise UserError(f"{name} is not a readable image: Pillow does not recognise its format") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise UserError(f"{name} is not a readable image: {_without_reprs(exc)}") from None
    return out


def _without_reprs(exc: Exception) -> str:
    """Pillow's message minus object reprs such as <_io.BytesIO object at 0x7f...> (noise to a user)."""
    return re.sub(r"\s*<[^<>]* object at 0x[0-9a-fA-F]+>", "", str(exc)).strip() or type(exc).__name__


def resize_array(images: np.ndarray, size: int) -> np.ndarray:
    """Resize an N x H x W x 3 uint8 array to size x size (a no-op when it already is)."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = to_rgb_size(Image.fromarray(image), size)
    return out
