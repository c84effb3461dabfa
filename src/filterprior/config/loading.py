"""Building a TrainConfig from YAML files, dicts and dotted `key=value` overrides, and writing it back.

Every key is checked while the config is built: an unknown key is an error that lists the valid ones,
and a value of the wrong type is an error that names the key and the expected type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from filterprior.config.legacy import current_key, note_renamed, upgrade_dict
from filterprior.config.schema import TrainConfig
from filterprior.errors import UserError
from filterprior.utils import atomic_write_text, read_yaml

OFF_IS_A_VALUE = ("amp",)  # string keys whose value `off` YAML would read as false


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` (after YAML parsing); convert int->float where natural."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(f"config key {key!r}: {value!r} is not a {_type_name(tp)}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {key!r}: expected a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config key {key!r}: expected true or false, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"config key {key!r}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"config key {key!r}: expected an integer, got {value!r}")
    if tp is str:
        if value is False and key in OFF_IS_A_VALUE:  # YAML 1.1 reads `amp=off` as false
            return "off"
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"config key {key!r}: expected a string, got {value!r}")
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def valid_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key the config accepts, e.g. `optim.lr`."""
    keys = []
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(valid_keys(tp, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise UserError(f"config section {prefix.rstrip('.') or '<top>'!r}: expected a mapping, got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(
            f"unknown config key {prefix + unknown[0]!r}; valid keys are: "
            + ", ".join(valid_keys(cls, prefix))
        )
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _from_dict(tp, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """A TrainConfig from a mapping; keys of the older layout are mapped to the new ones (a note says so)."""
    return _from_dict(TrainConfig, upgrade_dict(data or {}, where))


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    data = read_yaml(path, "config file") or {}
    try:
        return config_from_dict(data, str(path))
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc


def packaged_config(name: str) -> Path:
    """A recipe shipped inside the package (src/filterprior/configs/<name>)."""
    return Path(str(resources.files("filterprior") / "configs" / name))


def override_key(item: str) -> str:
    """The config key a `key=value` override sets, under today's name (prior.init_from_bank: init.from_bank)."""
    return current_key(item.split("=", 1)[0].strip())


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply `section.key=value` pairs; values are parsed as YAML (so `[1,2]`, `true`, `1e-3` work)."""
    data = config_to_dict(cfg)
    keys = set(valid_keys())
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. optim.lr=0.1)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if current_key(key) != key:  # an old name (prior.init_from_bank): the new key (init.from_bank)
            note_renamed([key], "override")
            key = current_key(key)
        if key not in keys and not key.startswith("model.options."):
            raise UserError(f"unknown config key {key!r}; valid keys are: " + ", ".join(sorted(keys)))
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return config_from_dict(data)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
