"""Finished cells' records (cell.json) brought up to date, so the tables keep them beside new cells of
their config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from filterprior.config import TrainConfig
from filterprior.results import CELL_FILE
from filterprior.study.changes import read_record
from filterprior.study.grid import Cell, recipe_hash
from filterprior.utils import atomic_write_text


def update_records(out_dir: Path, finished: Sequence[Cell], configs: dict[Cell, TrainConfig],
                    hashes: dict[Cell, str]) -> None:
    """Bring finished cells' cell.json up to date, so the tables keep them with new cells of their config:
    add the recipe hash to cells recorded before it existed, and give cells recorded with the legacy
    config hash (same_cell found them the same config) today's config and recipe hashes, the old one
    kept as `legacy_config_hash`."""
    for cell in finished:
        cell_file = out_dir / cell.rel_dir / CELL_FILE
        record = read_record(cell_file)
        if record is None:
            continue
        updated = dict(record)
        if record.get("config_hash") != hashes[cell]:  # the legacy hash (the cell counted as finished)
            updated.update(config_hash=hashes[cell], legacy_config_hash=record.get("config_hash"),
                           recipe_hash=recipe_hash(configs[cell]))
        elif "recipe_hash" not in record:
            updated["recipe_hash"] = recipe_hash(configs[cell])
        if updated != record:
            try:
                atomic_write_text(cell_file, json.dumps(updated, indent=2) + "\n")
            except OSError:
                pass  # the tables then show the cell apart from newer ones: never wrongly averaged
