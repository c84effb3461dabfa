"""Config keys as they were before the prior's section split (loss term / adversarial / MMD / init):
older config.yaml files, methods files and command lines still load, mapped to the new keys with a
one-line note; and the legacy layout, for the legacy config hash that finished work carries."""

from __future__ import annotations

import copy
import dataclasses
import sys
from typing import Any

from filterprior.errors import UserError

# old dotted key -> new dotted key
RENAMED = {
    **{f"prior.{key}": f"prior.adversarial.{key}"
       for key in ("loss", "d_arch", "spectral_norm", "d_steps", "d_lr", "d_betas", "seed_faithful")},
    "prior.mmd_bandwidths": "prior.mmd.bandwidths",
    "prior.init_from_bank": "init.from_bank",
    "prior.init_mode": "init.mode",
    "prior.init_layers": "init.layers",
    "prior.freeze": "init.freeze",
}

_NOTED: set[str] = set()


def current_key(key: str) -> str:
    """The key's name today (an old name is mapped; any other key is returned as it is)."""
    return RENAMED.get(key, key)


def note_renamed(keys: list[str], where: str) -> None:
    """One line on stderr, once a process for each set of old keys and place they came from."""
    shown = ", ".join(f"{old} is now {RENAMED[old]}" for old in keys[:3])
    more = f" and {len(keys) - 3} more old keys of the prior section" if len(keys) > 3 else ""
    message = f"note: {where}: {shown}{more} (read under the new names; the old ones will go)"
    if message not in _NOTED:
        _NOTED.add(message)
        print(message, file=sys.stderr)


def upgrade_dict(data: Any, where: str, quiet: bool = False) -> Any:
    """A config mapping (a config.yaml's contents) with old keys moved to the new ones (a note says so
    unless `quiet`); both an old key and its new one given is an error naming both."""
    if not isinstance(data, dict) or not isinstance(data.get("prior"), dict):
        return data
    old_keys = [old for old in RENAMED if old.split(".", 1)[1] in data["prior"]]
    if not old_keys:
        return data
    data = copy.deepcopy(data)
    for old in old_keys:
        value = data["prior"].pop(old.split(".", 1)[1])
        *sections, name = RENAMED[old].split(".")
        node = data
        for section in sections:
            if node.get(section) is None:
                node[section] = {}
            node = node[section]
            if not isinstance(node, dict):
                raise UserError(f"config section {'.'.join(sections)!r}: expected a mapping, got {node!r}")
        if name in node:
            raise UserError(f"config keys {old} (the old name) and {RENAMED[old]} are both given; keep {RENAMED[old]}")
        node[name] = value
    if not quiet:
        note_renamed(old_keys, where)
    return data


def legacy_layout(cfg: Any) -> dict[str, Any]:
    """The config as a dict in the layout before the split (what the legacy hash was computed on). A key
    with no old counterpart (init.bank) is kept under `init` when set, so no older config matches it."""
    data = dataclasses.asdict(cfg)
    prior, init = data["prior"], data.pop("init")
    gan, mmd = prior.pop("adversarial"), prior.pop("mmd")
    prior.update(gan)
    prior["mmd_bandwidths"] = mmd["bandwidths"]
    prior.update(init_from_bank=init["from_bank"], init_mode=init["mode"], init_layers=init["layers"],
                 freeze=init["freeze"])
    if init["bank"] is not None:
        data["init"] = {"bank": init["bank"]}
    return data
