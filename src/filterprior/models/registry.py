"""Model registry (timm-style): `@register_model(name)` on a constructor, `create_model(name, ...)`.

A constructor has the signature `fn(num_classes=10, in_channels=3, **options) -> nn.Module`, with every
option spelled out as a keyword parameter: that signature is what `create_model` checks user options
against, so a typo in a config file is an error that lists the valid options instead of being ignored.

The `check_*` helpers validate option values inside constructors, since options usually come from YAML.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from filterprior.errors import UserError

ModelFn = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFn] = {}


def register_model(name: str) -> Callable[[ModelFn], ModelFn]:
    """Decorator: make `fn` available to `create_model(name)`."""

    def decorator(fn: ModelFn) -> ModelFn:
        if name in _REGISTRY:
            # A programming error (two files claim one name), not bad user input.
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return decorator


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def model_options(name: str) -> dict[str, Any]:
    """The options `name` accepts (besides num_classes) with their defaults."""
    fn = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.name != "num_classes" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def create_model(name: str, num_classes: int = 10, **options: Any) -> nn.Module:
    """Build the registered model `name` with `num_classes` outputs and the given options."""
    fn = _lookup(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listing = ", ".join(valid) if valid else "(none)"
        raise UserError(f"model {name!r} has no option {unknown[0]!r}; valid options are: {listing}")
    check_int("num_classes", num_classes, minimum=1)
    if "in_channels" in options:
        check_int("in_channels", options["in_channels"], minimum=1)
    return fn(num_classes=num_classes, **options)


def _lookup(name: str) -> ModelFn:
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; registered models are: " + ", ".join(list_models()))
    return _REGISTRY[name]


# ------------------------------------------------------------------------------------ option checks


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"model option {name!r}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise UserError(f"model option {name!r}: expected an integer >= {minimum}, got {value!r}")
    return value


def check_fraction(name: str, value: Any) -> float:
    """A probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise UserError(f"model option {name!r}: expected a number in [0, 1), got {value!r}")
    return float(value)


def check_int_list(name: str, value: Any, length: int | None = None, odd: bool = False) -> list[int]:
    """A list of positive integers (odd ones, for kernel sizes that keep 'same' padding exact)."""
    what = f"a list of {length} " if length is not None else "a list of "
    what += "odd positive integers" if odd else "positive integers"
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
        raise UserError(f"model option {name!r}: expected {what}, got {value!r}")
    for item in value:
        bad_type = isinstance(item, bool) or not isinstance(item, int)
        if bad_type or item < 1 or (odd and item % 2 == 0):
            raise UserError(f"model option {name!r}: expected {what}, got {value!r}")
    return list(value)
