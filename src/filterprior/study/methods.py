"""Named recipes: a method is a list of dotted config overrides, read from a YAML methods file.

A method is either a list of overrides, or a mapping with `overrides` (that list) and `by_size`
(images per class -> more overrides applied after them at that size only), so one study command can
run a recipe tuned separately per size (e.g. 400 epochs at 10 a class, 160 at 50).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from filterprior.config import TrainConfig, apply_overrides, override_key
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
    by_size: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (images per class, overrides) pairs

    def overrides_at(self, images_per_class: int) -> tuple[str, ...]:
        """The overrides of a cell with this many images per class: the shared ones, then that size's."""
        return self.overrides + dict(self.by_size).get(images_per_class, ())

    def all_overrides(self) -> tuple[str, ...]:
        """Every override the method gives at any size (which keys it sets)."""
        return self.overrides + tuple(item for _size, items in self.by_size for item in items)


def load_methods(path: str | Path | None = None) -> dict[str, Method]:
    """Read a methods file (default: the bundled one); every recipe is checked against the config."""
    path = Path(path) if path is not None else BUNDLED_METHODS_FILE
    data = read_yaml(path, "methods file")
    if not isinstance(data, dict) or not data:
        raise UserError(f"methods file {path}: expected a mapping of method name -> list of key=value overrides "
                        "(or a mapping with 'overrides' and 'by_size')")
    methods = {}
    for name, overrides in data.items():
        methods[str(name)] = _parse_method(path, name, overrides)
    return methods


def _parse_method(path: Path, name: object, recipe: object) -> Method:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise UserError(
            f"methods file {path}: method name {name!r} is not valid; expected letters, digits and _ . + -"
        )
    where = f"methods file {path}: method {name!r}"
    by_size: dict[int, tuple[str, ...]] = {}
    if isinstance(recipe, dict):
        unknown = sorted(str(k) for k in recipe if k not in ("overrides", "by_size"))
        if unknown:
            raise UserError(f"{where} has unknown key(s) {', '.join(unknown)}; expected 'overrides' and 'by_size'")
        sizes = recipe.get("by_size") or {}
        if not isinstance(sizes, dict):
            raise UserError(f"{where}: by_size must map images per class to a list of key=value strings, got {sizes!r}")
        for size, items in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise UserError(f"{where}: by_size key {size!r} is not valid; expected images per class (an integer >= 1)")
            by_size[size] = _overrides(f"{where} at {size} images per class", items)
        recipe = recipe.get("overrides")
    method = Method(name=name, overrides=_overrides(where, recipe), by_size=tuple(sorted(by_size.items())))
    for size in [None, *by_size]:
        try:  # validate keys and values now, not mid-study
            apply_overrides(TrainConfig(), list(method.overrides if size is None else method.overrides_at(size)))
        except UserError as exc:
            at = "" if size is None else f" at {size} images per class"
            raise UserError(f"{where}{at}: {exc}") from exc
    return method


def _overrides(where: str, items: object) -> tuple[str, ...]:
    """A list of key=value strings, checked to leave the study's own keys alone."""
    if items is None:
        items = []
    if not isinstance(items, list) or not all(isinstance(o, str) for o in items):
        raise UserError(f"{where} must be a list of key=value strings, got {items!r}")
    for item in items:
        key = override_key(item)
        if key in RESERVED_KEYS:
            raise UserError(f"{where} sets {key!r}, which the study sets per cell ({', '.join(RESERVED_KEYS)})")
    return tuple(items)


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
