"""Refuse image-folder data a classifier cannot be trained and tested on.

Run on every load of a folder or folder archive (also one read from the cache), so a result can never be
"100 % on 1 class" or an accuracy over zero test images (which writes NaN into metrics.json). Official
CIFAR archives always hold every class in both splits.
"""

from __future__ import annotations

import numpy as np

from filterprior.data.image_data import ImageData
from filterprior.errors import UserError

HOLDOUT_HELP = (
    "without a test/ folder, data.test_fraction={fraction} of each class is held out for testing "
    "(at least 1 image, from classes of 2 or more images): give every class at least 2 images, "
    "or a test/<class>/ folder for every class"
)


def check_usable(data: ImageData, test_fraction: float) -> ImageData:
    """`data`, or a UserError naming the dataset unless it has 2+ classes, each with training and test images."""
    where = data.source or data.name
    if data.num_classes < 2:
        raise UserError(
            f"dataset {where} has only {data.num_classes} class ({', '.join(data.classes) or 'none'}); "
            "a classifier needs at least 2: one folder per class under train/"
        )
    train = np.bincount(data.train_labels, minlength=data.num_classes)
    test = np.bincount(data.test_labels, minlength=data.num_classes)
    counts = ", ".join(f"{c} {n}+{t}" for c, n, t in zip(data.classes, train, test))
    help_text = HOLDOUT_HELP.format(fraction=test_fraction)
    no_train = [c for c, n in zip(data.classes, train) if n == 0]
    if no_train:
        raise UserError(
            f"dataset {where}: class(es) {no_train} have no training images "
            f"(images per class, train+test: {counts}); {help_text}"
        )
    if test.sum() == 0:
        raise UserError(
            f"dataset {where}: the test split is empty (images per class, train+test: {counts}); {help_text}"
        )
    no_test = [c for c, t in zip(data.classes, test) if t == 0]
    if no_test:
        raise UserError(
            f"dataset {where}: class(es) {no_test} have no test images, so their accuracy is undefined "
            f"(images per class, train+test: {counts}); {help_text}"
        )
    return data
