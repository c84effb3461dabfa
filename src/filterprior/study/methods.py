"""Named recipes: a method is a list of dotted config overrides, read from a YAML methods file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from filterprior.config import TrainConfig, apply_overrides
from filterprior.errors import UserError
from filterprior.utils import read_yaml

BUNDLED_METHODS_FILE = Path(__file__).with_name("methods.yaml")

# The study sets these per cell; a recipe that set them would be silently overwritten.
RESERVED_KEYS = ("data.images_per_class", "data.split_seed", "seed")

# Method names become directory names, so keep them to safe characters.
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Method:
    name: str
    overrides: tuple[str, ...]


def load_methods(path: str | Path | None = None) -> dict[str, Method]:
    """Read a methods file (default: the bundled one); every recipe is checked against the config."""
    path = Path(path) if path is not None else BUNDLED_METHODS_FILE
    data = read_yaml(path, "methods file")
    if not isinstance(data, dict) or not data:
        raise UserError(f"methods file {path}: expected a mapping of method name -> list of key=value overrides")
    methods = {}
    for name, overrides in data.items():
        methods[str(name)] = _parse_method(path, name, overrides)
    return methods


def _parse_method(path: Path, name: object, overrides: object) -> Method:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise UserError(
            f"methods file {path}: method name {name!r} is not valid; expected letters, digits and _ . + -"
        )
    if overrides is None:
        overrides = []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise UserError(f"methods file {path}: method {name!r} must be a list of key=value strings, got {overrides!r}")
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key in RESERVED_KEYS:
            raise UserError(
                f"methods file {path}: method {name!r} sets {key!r}, which the study sets per cell "
                f"({', '.join(RESERVED_KEYS)})"
            )
    try:
        apply_overrides(TrainConfig(), list(overrides))  # validate keys and values now, not mid-study
    except UserError as exc:
        raise UserError(f"methods file {path}: method {name!r}: {exc}") from exc
    return Method(name=name, overrides=tuple(overrides))


def select_methods(known: dict[str, Method], names: Sequence[str] | None) -> list[Method]:
    """The named methods in the order given (None: every known method, in file order)."""
    if names is None:
        return list(known.values())
    if not names:
        raise UserError("no methods given; known methods are: " + ", ".join(known))
    chosen = []
    for name in names:
        if name not in known:
            raise UserError(f"unknown method {name!r}; known methods are: " + ", ".join(known))
        if any(m.name == name for m in chosen):
            raise UserError(f"method {name!r} is listed twice")
        chosen.append(known[name])
    return chosen
