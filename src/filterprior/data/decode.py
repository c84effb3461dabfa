"""Turn image bytes into uint8 RGB arrays of one size (Pillow).

Two things Pillow's plain convert("RGB") gets wrong are done here first: the EXIF orientation is applied
(phone photos are stored sideways with a tag saying so), and 16-bit images are scaled by their real range
(convert clips 16-bit values to 255, so a 16-bit greyscale PNG came out near-white).
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from filterprior.errors import UserError


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ORIENTATION = 0x0112  # the EXIF tag


def upright(image: Image.Image) -> Image.Image:
    """The image as it is meant to be seen: its EXIF orientation applied (a no-op without one)."""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not make a readable image unreadable
        return image
    return image if orientation in (None, 1) else ImageOps.exif_transpose(image)


def to_8bit(image: Image.Image, name: str = "image", file_format: str | None = None) -> Image.Image:
    """8-bit greyscale from 16-bit ('I;16*') and 32-bit integer ('I') images, scaled by their range.

    'I;16*' spans 0..65535. 'I' is how Pillow holds 16-bit PNGs (before Pillow 10) and 32-bit TIFFs:
    a PNG, or values above 255 within 0..65535, are read as 16-bit; values within 0..255 are already
    8-bit; other ranges are refused (no guess). Other modes are returned as they are.
    """
    if image.mode not in (*SIXTEEN_BIT_MODES, "I"):
        return image
    values = np.asarray(image).astype(np.int64)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if image.mode == "I" and file_format != "PNG" and 0 <= low and high <= 255:
        return Image.fromarray(values.astype(np.uint8))
    if low < 0 or high > 65535:
        raise UserError(f"{name}: a {image.mode} image with values {low}..{high}; expected 0..65535 "
                        "(16-bit) or 0..255: save it as an 8- or 16-bit image")
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))


def to_rgb_size(image: Image.Image, size: int, name: str = "image") -> np.ndarray:
    """RGB uint8 array of size x size, upright (EXIF) and scaled to 8 bits by the image's real range;
    other sizes are resized with bilinear filtering.

    Pillow's resize widens the filter when shrinking, so downscaling is antialiased. Non-square images
    are stretched to a square (no crop), so nothing of the image is lost.
    """
    image = to_8bit(upright(image), name, image.format)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def decode_images(items: list[tuple[str, bytes]], size: int) -> np.ndarray:
    """Decode (name, bytes) pairs into one N x size x size x 3 uint8 array.

    Runs in this process: decoding a 32x32 image takes ~60 us, so all of CIFAR-10 takes a few seconds and
    a process pool gained under 10 % here (the bytes must be pickled to the workers and back).
    An image Pillow cannot read stops the load with a UserError naming it, and so does one with more
    pixels than Pillow's decompression-bomb limit (2 x Image.MAX_IMAGE_PIXELS, about 179 megapixels).
    """
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    for i, (name, data) in enumerate(items):
        try:
            with Image.open(io.BytesIO(data)) as image:
                out[i] = to_rgb_size(image, size, name)
        except UnidentifiedImageError:
            raise UserError(f"{name} is not a readable image: Pillow does not recognise its format") from None
        except Image.DecompressionBombError as exc:
            raise UserError(f"{name} is not a readable image: {exc}") from None
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
