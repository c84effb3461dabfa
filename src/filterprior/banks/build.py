"""Building filter banks: stack the conv filters (and the BatchNorm after each) of trained networks,
from state dicts or from run directories / exported weights, recording where they came from."""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from filterprior.errors import UserError
from filterprior.banks.bank import NORM_KEYS, FilterBank, save_bank
from filterprior.models.introspect import norms_after_convs, strip_wrapper_prefixes
from filterprior.utils import read_json, read_yaml

WEIGHTS_FILE = "weights.safetensors"


def bank_from_state_dicts(
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    layer_names: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
    norm_names: Mapping[str, str] | None = None,
) -> FilterBank:
    """Stack each layer's conv weights from every state dict; no layer names -> every conv weight.

    `norm_names` maps a conv layer to the BatchNorm after it; those are stacked too (an affine-free
    BatchNorm contributes weight 1 and bias 0).
    """
    if not state_dicts:
        raise UserError("building a filter bank needs at least one network's weights")
    cleaned = [strip_wrapper_prefixes(sd) for sd in state_dicts]
    names = [n[: -len(".weight")] if n.endswith(".weight") else n for n in layer_names]
    if not names:
        names = sorted(_conv_layer_names(cleaned[0]), key=_natural_key)
    filters = {}
    for name in names:
        parts = []
        for i, sd in enumerate(cleaned):
            weight = sd.get(f"{name}.weight")
            if weight is None or weight.dim() != 4:
                raise UserError(
                    f"network {i} has no conv layer {name!r}; its conv layers are: {', '.join(_conv_layer_names(sd))}"
                )
            if parts and weight.shape[1:] != parts[0].shape[1:]:
                raise UserError(
                    f"conv layer {name!r}: network {i} has filters {tuple(weight.shape[1:])}, "
                    f"network 0 has {tuple(parts[0].shape[1:])}"
                )
            parts.append(weight.detach().float().cpu())
        filters[name] = torch.cat(parts)
    norms = {}
    for name in names:
        bn = (norm_names or {}).get(name)
        if bn is not None and all(f"{bn}.running_mean" in sd for sd in cleaned):
            norms[name] = {key: torch.cat([_norm_tensor(sd, bn, key) for sd in cleaned]) for key in NORM_KEYS}
    meta = dict(metadata or {})
    meta["layers"] = names
    meta.setdefault("networks", len(state_dicts))
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return FilterBank(filters, meta, norms)


def _norm_tensor(sd: Mapping[str, torch.Tensor], bn: str, key: str) -> torch.Tensor:
    value = sd.get(f"{bn}.{key}")
    if value is None:  # BatchNorm2d(affine=False): no weight and bias
        mean = sd[f"{bn}.running_mean"]
        value = torch.ones_like(mean) if key == "weight" else torch.zeros_like(mean)
    return value.detach().float().cpu()


def collect_bank(
    weight_files: Iterable[str | Path],
    layers: Sequence[str],
    out: str | Path,
    metadata: Mapping[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> FilterBank:
    """Build a bank from exported `weights.safetensors` files (or run directories holding one) and save it.

    Beside each weights file the engine's `weights.json` (model, options, classes) is read, and in a run
    directory `metrics.json` (test accuracy) and `config.yaml` (seed, dataset, recipe) too, so the bank
    records where its filters came from. `metadata` entries override what was found (None ones do not).
    """
    from safetensors.torch import load_file

    given = [Path(p) for p in weight_files]
    paths = [_weights_path(p) for p in given]
    if not paths:
        raise UserError("filterprior collect: give at least one weights.safetensors file or run directory")
    _refuse_repeats(given, paths)
    state_dicts, infos = [], []
    for path in paths:
        try:
            state_dicts.append(load_file(str(path)))
        except Exception as exc:
            raise UserError(f"weights file {path} is not a readable safetensors file: {exc}") from exc
        infos.append(_source_info(path))
    _refuse_mixed_architectures(paths, infos)
    found: dict[str, Any] = {
        "model": infos[0].get("model"),
        "model_options": infos[0].get("options", {}),
        "num_classes": _num_classes(infos[0]),
        "source_dataset": _single_or_each([info.get("dataset") for info in infos]),
        "seeds": [info.get("seed") for info in infos],
        "source_test_acc": [info.get("test_acc") for info in infos],
        # one recipe when every source shares it, else one per source (None: not a run directory)
        "recipe": _single_or_each([info.get("recipe") for info in infos]),
        "sources": [str(p) for p in paths],
    }
    found.update({k: v for k, v in (metadata or {}).items() if v is not None})  # None: "not known here"
    bank = bank_from_state_dicts(state_dicts, layers, found, _norm_names(found)).rounded(dtype)
    save_bank(bank, out, dtype)
    return bank


def _norm_names(info: Mapping[str, Any]) -> dict[str, str]:
    """conv layer -> its BatchNorm's name, from the source model's architecture when it is registered."""
    from filterprior.models import create_model, list_models

    if info.get("model") not in list_models() or not info.get("num_classes"):
        return {}
    model = create_model(info["model"], num_classes=info["num_classes"], **(info.get("model_options") or {}))
    names = {id(m): n for n, m in model.named_modules()}
    return {conv: names[id(bn)] for conv, bn in norms_after_convs(model).items()}


# ------------------------------------------------------------------------------------ helpers


def _refuse_repeats(given: Sequence[Path], paths: Sequence[Path]) -> None:
    """The same network given twice (also as its run directory and its weights file) would count twice."""
    first: dict[Path, Path] = {}
    for shown, path in zip(given, paths):
        resolved = path.resolve()
        if resolved in first:
            raise UserError(
                f"filterprior collect: {first[resolved]} and {shown} are the same source model ({resolved}); "
                "give each source once"
            )
        first[resolved] = shown


def _num_classes(info: Mapping[str, Any]) -> int | None:
    return info.get("num_classes") or len(info.get("classes") or []) or None


def _refuse_mixed_architectures(paths: Sequence[Path], infos: Sequence[Mapping[str, Any]]) -> None:
    """One bank holds one architecture: same model, options and number of classes in every source."""
    for what, value in (("model", lambda i: i.get("model")), ("model options", lambda i: i.get("options", {})),
                        ("num_classes", _num_classes)):
        values = [value(info) for info in infos]
        if any(v != values[0] for v in values):
            listing = ", ".join(f"{p}: {v!r}" for p, v in zip(paths, values))
            raise UserError(
                f"filterprior collect: the sources differ in {what} ({listing}); use one architecture per bank"
            )


def _weights_path(path: Path) -> Path:
    candidate = path / WEIGHTS_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise UserError(f"{path}: expected a {WEIGHTS_FILE} file or a run directory holding one")
    return candidate


def _source_info(weights: Path) -> dict[str, Any]:
    info: dict[str, Any] = {}
    sidecar = weights.with_suffix(".json")
    if sidecar.is_file():
        info.update(read_json(sidecar, "weights metadata"))
    run_dir = weights.parent
    if (run_dir / "metrics.json").is_file():
        info["test_acc"] = read_json(run_dir / "metrics.json", "run metrics").get("test_acc")
    if (run_dir / "config.yaml").is_file():
        cfg = read_yaml(run_dir / "config.yaml", "run config") or {}
        data = cfg.get("data") or {}
        info.setdefault("dataset", data.get("dataset"))
        info["seed"] = cfg.get("seed")
        info["recipe"] = {k: cfg.get(k) for k in ("optim", "epochs", "batch_size", "prior") if k in cfg}
        info["recipe"]["data"] = {k: v for k, v in data.items() if k not in ("root", "split_seed")}
    return info


def _conv_layer_names(sd: Mapping[str, torch.Tensor]) -> list[str]:
    return [k[: -len(".weight")] for k, v in sd.items() if k.endswith(".weight") and v.dim() == 4]


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _single_or_each(values: Sequence[Any]) -> Any:
    """The one value all sources share, else one entry per source in the order of `sources`."""
    if all(v == values[0] for v in values):
        return values[0]
    return list(values)
