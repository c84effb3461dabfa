"""Finished cells whose config has changed since they ran: found before anything is written, and refused
unless the user asks for them to be replaced (--overwrite), so a rerun never deletes finished results
behind the user's back. The message says which cells differ, in which config keys (old → new)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from filterprior.config import TrainConfig, config_from_dict, config_to_dict
from filterprior.config.legacy import upgrade_dict
from filterprior.errors import UserError
from filterprior.results import CELL_FILE
from filterprior.study.grid import Cell

# Keys that change how a run executes, not what it computes (grid.cell_hash leaves them out too).
_IGNORED = {"threads", "progress"}
_SHOWN_LABELS = 3  # cells named per kind of difference; the rest are counted


@dataclass(frozen=True)
class ChangedCell:
    label: str  # e.g. "none n=10 split=0"
    rel_dir: str
    differences: tuple[str, ...]  # "epochs: 15 → 16", ...


class CellsChanged(UserError):
    """Finished cells would be replaced by cells of another config; nothing was written."""

    def __init__(self, out_dir: Path, changed: Sequence[ChangedCell]):
        self.out_dir = Path(out_dir)
        self.changed = list(changed)
        super().__init__(
            f"{out_dir} holds {len(self.changed)} finished cell(s) run with another config: {describe(self.changed)}. "
            "Nothing was deleted. To retrain them with the new config pass --overwrite (their old results "
            "are deleted), or give another --out directory to keep both"
        )


def describe(changed: Sequence[ChangedCell]) -> str:
    """Cells grouped by how they differ: 'none n=10 split=0, … (4 cells): epochs: 15 → 16; …'."""
    by_kind: dict[tuple[str, ...], list[str]] = {}
    for cell in changed:
        by_kind.setdefault(cell.differences, []).append(cell.label)
    parts = []
    for differences, labels in by_kind.items():
        named = ", ".join(labels[:_SHOWN_LABELS])
        if len(labels) > _SHOWN_LABELS:
            named += f" and {len(labels) - _SHOWN_LABELS} more"
        parts.append(f"{named}: {', '.join(differences)}")
    return "; ".join(parts)


def config_differences(old: object, new: dict) -> tuple[str, ...]:
    """'key: old -> new' for each config key that differs (nested keys dotted)."""
    if not isinstance(old, dict):
        return ("no config recorded in its cell.json",)
    before, after = _flatten(old), _flatten(new)
    keys = sorted((set(before) | set(after)) - _IGNORED)
    missing = "(not set)"
    changes = tuple(
        f"{key}: {_show(before.get(key, missing))} → {_show(after.get(key, missing))}"
        for key in keys
        if before.get(key, missing) != after.get(key, missing)
    )
    # Same keys, other hash: what the config names by path has other content (a rebuilt filter bank).
    return changes or ("the same config keys, but the filter bank file it reads has other content",)


def read_record(cell_file: Path) -> dict | None:
    try:
        record = json.loads(cell_file.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _show(value: object) -> str:
    return value if value == "(not set)" else json.dumps(value)


def changed_cell(out_dir: Path, cell: Cell, cfg: TrainConfig) -> ChangedCell:
    record = read_record(out_dir / cell.rel_dir / CELL_FILE) or {}
    recorded = _as_today(record.get("config"))
    return ChangedCell(cell.label, cell.rel_dir.as_posix(), config_differences(recorded, config_to_dict(cfg)))


def _as_today(recorded: object) -> object:
    """A recorded config as this version reads it: old key names mapped, keys it lacks at their default
    (so a key added since, left at its default, is no difference). As recorded if it no longer loads."""
    if not isinstance(recorded, dict):
        return recorded  # nothing recorded: config_differences says so
    try:
        return config_to_dict(config_from_dict(upgrade_dict(recorded, "cell.json", quiet=True)))
    except (UserError, TypeError, ValueError):
        return recorded
