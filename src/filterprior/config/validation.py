"""Value checks on a complete config (epochs >= 1, lr > 0, ...).

Types are checked while the config is built (loading.py); values are checked here, once it is complete
(a base file may be fixed up by later overrides). engine.train calls this before it writes anything.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from filterprior.config.schema import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, DataConfig, TrainConfig, image_size_ok
from filterprior.errors import UserError


def _finite_above_0(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _finite_from_0(v: float) -> bool:
    return math.isfinite(v) and v >= 0


def _fraction(v: float) -> bool:  # [0, 1): momentum, betas, label smoothing
    return 0 <= v < 1


def _betas(v: list[float]) -> bool:
    return len(v) == 2 and all(_fraction(b) for b in v)


TTA_MODES = ("none", "flip", "flip-shift", "flip-shift-diagonal")
AMP_MODES = ("off", "bf16", "fp16")
POLICIES = ("none", "autoaugment", "randaugment", "trivialaugment")  # data.policy

# (dotted key, test, what is expected)
_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("epochs", lambda v: v >= 1, "1 or more"),
    ("batch_size", lambda v: v >= 1, "1 or more"),
    ("eval_batch_size", lambda v: v >= 1, "1 or more"),
    ("tta", lambda v: v in TTA_MODES, f"one of {', '.join(TTA_MODES)}"),
    ("amp", lambda v: v in AMP_MODES, f"one of {', '.join(AMP_MODES)}"),
    ("threads", lambda v: v is None or v >= 0, "0 or more (0 or null: torch's default)"),
    ("val_every", lambda v: v >= 0, "0 or more (0: only at the end)"),
    ("data.images_per_class", lambda v: v is None or v >= 1, "1 or more (null: every training image)"),
    ("data.val_per_class", lambda v: v is None or v >= 0, "0 or more (null: the dataset's default)"),
    ("data.test_fraction", lambda v: 0 < v < 1, "between 0 and 1 (exclusive)"),
    ("data.image_size", image_size_ok, f"from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}"),
    ("data.crop_padding", lambda v: v >= 0, "0 or more (0: off)"),
    ("data.cutout", lambda v: v >= 0, "0 or more (0: off)"),
    ("data.policy", lambda v: v in POLICIES, f"one of {', '.join(POLICIES)}"),
    ("data.randaugment_n", lambda v: v >= 1, "1 or more"),
    ("data.randaugment_m", lambda v: 0 <= v <= 30, "in 0..30"),
    ("data.mixup", _finite_from_0, "a finite number, 0 or more (0: off)"),
    ("data.cutmix", _finite_from_0, "a finite number, 0 or more (0: off)"),
    ("data.mix_prob", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("ema", _fraction, "in [0, 1) (0: off)"),
    ("optim.lr", _finite_above_0, "a finite number above 0"),
    ("optim.momentum", _fraction, "in [0, 1)"),
    ("optim.betas", _betas, "two numbers, each in [0, 1)"),
    ("optim.weight_decay", _finite_from_0, "a finite number, 0 or more"),
    ("optim.label_smoothing", _fraction, "in [0, 1)"),
    ("optim.warmup_epochs", _finite_from_0, "a finite number, 0 or more"),
    ("optim.step_epochs", lambda v: v >= 1, "1 or more"),
    ("optim.gamma", _finite_above_0, "a finite number above 0"),
    ("prior.weight", _finite_from_0, "a finite number, 0 or more"),
    ("prior.warmup_epochs", _finite_from_0, "a finite number, 0 or more"),
    ("prior.kernels_per_step", lambda v: v >= 2, "2 or more"),
    ("prior.adversarial.d_steps", lambda v: v >= 1, "1 or more"),
    ("prior.adversarial.d_lr", _finite_above_0, "a finite number above 0"),
    ("prior.adversarial.d_betas", _betas, "two numbers, each in [0, 1)"),
    ("prior.mmd.bandwidths", lambda v: len(v) > 0 and all(_finite_above_0(b) for b in v),
     "one or more finite numbers above 0"),
]


def _get(cfg: TrainConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _check_normalisation(data: DataConfig) -> None:
    """data.mean/std replace the measured statistics only as a pair: one alone would be ignored."""
    if (data.mean is None) != (data.std is None):
        given, missing = ("data.mean", "data.std") if data.mean is not None else ("data.std", "data.mean")
        raise UserError(f"{given} is set without {missing}: give both (3 numbers each, one per RGB channel) "
                        "or neither (measured on the training images)")
    if data.mean is None:
        return
    if len(data.mean) != 3 or len(data.std) != 3:
        raise UserError(f"data.mean and data.std need 3 numbers each (one per RGB channel), "
                        f"got {data.mean!r} and {data.std!r}")
    if not all(math.isfinite(m) for m in data.mean):
        raise UserError(f"data.mean must hold finite numbers, got {data.mean!r}")
    if not all(_finite_above_0(s) for s in data.std):
        raise UserError(f"data.std must hold finite numbers above 0, got {data.std!r}")


def validate_config(cfg: TrainConfig) -> None:
    """Raise UserError naming the first key whose value is out of range."""
    check_ranges(cfg)
    _check_normalisation(cfg.data)


def check_ranges(section: Any, prefix: str = "") -> None:
    """Apply the value rules under `prefix` to `section`: the whole TrainConfig (prefix ""), or one of
    its sections, e.g. a PriorConfig with prefix "prior." (a prior checks its own config this way)."""
    for key, ok, expected in _RULES:
        if key.startswith(prefix):
            value = _get(section, key[len(prefix):])
            if not ok(value):
                raise UserError(f"{key} must be {expected}, got {value!r}")
