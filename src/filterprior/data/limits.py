"""Bounds on what reading a dataset may cost, so hostile or mistaken input fails with a message instead
of exhausting memory.

The whole dataset is held in memory (the files' bytes while decoding, then uint8 arrays), so the caps
are on what is read: one file, and all files of one dataset together. They are generous for image
data: a 64 MiB image file is already a 100-megapixel photo, CIFAR-100's largest pickled batch is 155 MB,
and 4 GiB of files is far more than the small-data studies this toolkit is for.
"""

from __future__ import annotations

# the bounds on data.image_size live with the config's validation (bottom layer); re-exported for reading and eval
from filterprior.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, image_size_ok  # noqa: F401
from filterprior.errors import UserError

MiB = 1 << 20
MAX_IMAGE_FILE_BYTES = 64 * MiB  # one image file (in a folder or an archive)
MAX_BATCH_FILE_BYTES = 256 * MiB  # one pickled batch of an official CIFAR archive (CIFAR-100 train: 155 MB)
MAX_TOTAL_BYTES = 4096 * MiB  # all files read for one dataset together


def describe_bytes(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"


def check_image_size(value: object, where: str = "image_size") -> int:
    """`value` if it is an integer in MIN_IMAGE_SIZE..MAX_IMAGE_SIZE, else a UserError naming `where`."""
    if not image_size_ok(value):
        raise UserError(
            f"{where} must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} (the side images are "
            f"resized to), got {value!r}"
        )
    return int(value)  # type: ignore[arg-type]
