"""The one in-memory form every dataset is loaded into."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ImageData:
    """A dataset decoded to uint8 arrays.

    Images are N x H x W x 3 uint8 (RGB); labels are int64 indices into `classes`. `source` says where the
    data came from (a path) and `source_hash` is the sha256 of its content, so a result can name the
    exact files it was measured on.
    """

    name: str
    classes: list[str]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    source_hash: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[1])

    def __repr__(self) -> str:
        return (
            f"ImageData(name={self.name!r}, classes={len(self.classes)}, train={len(self.train_labels)}, "
            f"test={len(self.test_labels)}, size={self.train_images.shape[1:3]}, source={self.source!r})"
        )
