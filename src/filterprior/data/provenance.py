"""Is this the data a model was trained on? Compare what a run recorded (weights.json) with loaded data.

A run records its data's `classes` and `source_hash`. Evaluating on data with other class names would
score label i of one list against label i of the other, so that is refused. Other content under the same
class names (a folder with files added, a re-packed archive, or simply another dataset with the same
classes) may be intended, but a folder's held-out test set then need not be the one the run held out:
that gets a one-line warning.
"""

from __future__ import annotations

from typing import Any

from filterprior.data.image_data import ImageData
from filterprior.errors import UserError


def _difference(recorded: list[str], found: list[str]) -> str:
    only_run = [c for c in recorded if c not in found]
    only_data = [c for c in found if c not in recorded]
    if not only_run and not only_data:
        return "the same names in another order"
    parts = []
    if only_run:
        parts.append(f"only the run has {only_run}")
    if only_data:
        parts.append(f"only the data has {only_data}")
    return "; ".join(parts)


def check_recorded_data(recorded: dict[str, Any], data: ImageData, where: str) -> str | None:
    """Raise UserError if `data`'s classes differ from the `classes` in `recorded` (weights.json of the
    run at `where`); return a warning line if only the `source_hash` differs; None when both agree or
    were not recorded (runs exported before they were)."""
    classes = recorded.get("classes")
    if isinstance(classes, list) and [str(c) for c in classes] != list(data.classes):
        raise UserError(
            f"{where} was trained on classes {list(classes)} but {data.source or data.name} has "
            f"{list(data.classes)} ({_difference([str(c) for c in classes], list(data.classes))}); "
            "labels are matched by position, so evaluating would compare different classes"
        )
    recorded_hash = recorded.get("source_hash")
    if isinstance(recorded_hash, str) and recorded_hash != data.source_hash:
        return (
            f"the data differs from what {where} was trained on (source_hash {recorded_hash[:12]} then, "
            f"{data.source_hash[:12]} now, in {data.source or data.name}); the class names agree, so it is "
            "evaluated: make sure its test images are not among the run's training images"
        )
    return None
