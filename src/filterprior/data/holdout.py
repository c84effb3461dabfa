"""Which images of an image folder without test/ are held out as its test set: chosen by content.

Within each class, images are ranked by the sha256 of their bytes (as the shared CIFAR-100 archive chose
its test images), and the first round(test_fraction * n) are held out, at least 1 and at most n - 1 for a
class of 2 or more images (a class of one holds out nothing and is then refused by checks.py).

An image's rank among the others of its class never changes when files are added, removed or renamed,
so (unlike choosing by position in the sorted file list, as before) the split only moves at its edge:
- a new image ranked among the held-out ones takes a place, and the last held-out image goes to train;
- when the class's count round(test_fraction * n) grows by one and no new image takes the place, the
  next image in rank moves from train to test. This is the one way a run's training image can reach a
  later test set of a grown folder, one image at a time; `eval` warns when the data's hash differs
  from the one the run recorded.
Exact duplicate files have equal hashes and are kept on one side of the split.
"""

from __future__ import annotations

import hashlib

import numpy as np


def content_key(data: bytes) -> int:
    """The image's rank key: the first 8 bytes of its sha256, as an unsigned integer."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def held_out_count(n: int, fraction: float) -> int:
    """round(fraction * n), at least 1 and at most n - 1 when n >= 2; 0 for a class of one image."""
    if n < 2:
        return 0
    return min(max(int(round(fraction * n)), 1), n - 1)


def held_out(labels: np.ndarray, keys: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the images held out as test; `keys` (uint64) are content_key of each image."""
    labels, keys = np.asarray(labels), np.asarray(keys, dtype=np.uint64)
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = held_out_count(len(idx), fraction)
        if k == 0:
            continue
        ks = keys[idx]
        edge = np.sort(ks)[k - 1]
        chosen = ks <= edge  # duplicates of the edge image go with it...
        if chosen.all():
            chosen = ks < edge  # ...unless that would leave no training image
        test[idx[chosen]] = True
    return test
