"""Filter banks: conv filters collected from networks trained on plenty of data; save, load, sample.

A bank file is a safetensors file (one tensor per layer, (n, in, kh, kw) float32) whose header also
carries the metadata as JSON; a JSON sidecar beside it (`bank.json` for `bank.safetensors`) repeats
the metadata for people and tools without torch. The content hash (sha256 over the layers' names,
shapes and float32 bytes) is checked on load, so a damaged file is refused instead of used.
Building a bank from trained networks lives in `banks.build`.
"""

from __future__ import annotations

import hashlib
import functools
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from filterprior.errors import UserError
from filterprior.banks.views import VIEWS
from filterprior.utils import atomic_path, atomic_write_text, read_json

HEADER_KEY = "filterprior_bank"
NORM_SEP = "::norm."  # tensor key of a layer's BatchNorm entry: "<layer>::norm.<key>"
NORM_KEYS = ("weight", "bias", "running_mean", "running_var")
BANKS_DIR = Path(__file__).resolve().parent.parent / "assets" / "banks"


class FilterBank:
    """Per layer name: {'filters': (n, in, kh, kw), 'slices': (n*in, kh, kw)}; plus a metadata dict."""

    def __init__(
        self,
        filters: Mapping[str, torch.Tensor],
        metadata: Mapping[str, Any] | None = None,
        norms: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    ):
        if not filters:
            raise UserError("a filter bank needs at least one layer")
        self.layers: dict[str, dict[str, torch.Tensor]] = {}
        for name, f in filters.items():
            if f.dim() != 4 or f.shape[0] == 0:
                raise UserError(f"filter bank layer {name!r}: expected (n, in, kh, kw) filters, got {tuple(f.shape)}")
            f = f.detach().to(torch.float32).contiguous()
            self.layers[name] = {"filters": f, "slices": f.reshape(-1, f.shape[-2], f.shape[-1])}
        # Optional: per layer, the BatchNorm after each filter in its source network (NORM_KEYS, (n,) each),
        # so a whole source network can be rebuilt (init_mode=network); samplers ignore it.
        self.norms: dict[str, dict[str, torch.Tensor]] = {}
        for name, entry in (norms or {}).items():
            n = self.filters(name).shape[0]
            if set(entry) != set(NORM_KEYS) or any(tuple(t.shape) != (n,) for t in entry.values()):
                raise UserError(
                    f"filter bank layer {name!r}: its BatchNorm entry needs {', '.join(NORM_KEYS)}, each of shape ({n},)"
                )
            self.norms[name] = {key: entry[key].detach().to(torch.float32).contiguous() for key in NORM_KEYS}
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.metadata.setdefault("layers", list(self.layers))
        self.path: Path | None = None  # the file it was loaded from (load_bank sets it), for messages
        self.metadata["content_hash"] = self.content_hash()

    @property
    def layer_names(self) -> list[str]:
        return list(self.layers)

    def filters(self, layer: str) -> torch.Tensor:
        return self._layer(layer)["filters"]

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.layers):
            f = self.layers[name]["filters"]
            digest.update(f"{name}:{tuple(f.shape)};".encode())
            digest.update(f.detach().cpu().contiguous().numpy().tobytes())
        for name in sorted(self.norms):  # absent in banks without norms: their hash is unchanged
            for key in NORM_KEYS:
                digest.update(f"{name}{NORM_SEP}{key};".encode())
                digest.update(self.norms[name][key].cpu().numpy().tobytes())
        return digest.hexdigest()

    def describe_source(self) -> str:
        """How messages name the bank: its file when it was loaded from one, else its content hash."""
        return f"filter bank {self.path}" if self.path else f"filter bank {self.metadata['content_hash'][:12]}"

    def rounded(self, dtype: torch.dtype) -> "FilterBank":
        """This bank as it reads back after being stored in `dtype` (its hash recomputed); float32: itself."""
        if dtype == torch.float32:
            return self
        return FilterBank(
            {name: entry["filters"].to(dtype) for name, entry in self.layers.items()},
            {k: v for k, v in self.metadata.items() if k != "content_hash"},
            {name: {key: t.to(dtype) for key, t in entry.items()} for name, entry in self.norms.items()},
        )

    def to(self, device: torch.device | str) -> "FilterBank":
        moved = FilterBank.__new__(FilterBank)
        moved.layers = {
            name: {key: t.to(device) for key, t in entry.items()} for name, entry in self.layers.items()
        }
        moved.norms = {name: {key: t.to(device) for key, t in entry.items()} for name, entry in self.norms.items()}
        moved.metadata = dict(self.metadata)
        moved.path = self.path
        return moved

    def kernels(self, layer: str, view: str = "slice") -> torch.Tensor:
        """Every kernel of `layer` in the given view: 2-D slices, or whole filters."""
        if view not in VIEWS:
            raise UserError(f"prior.view: {view!r} is not a kernel view; expected one of {', '.join(VIEWS)}")
        return self._layer(layer)["slices" if view == "slice" else "filters"]

    def sample(
        self, layer: str, n: int, view: str = "slice", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """`n` kernels of `layer` in the given view; without replacement when the bank has enough."""
        kernels = self.kernels(layer, view)
        count = kernels.shape[0]
        if n <= count:
            idx = torch.randperm(count, generator=generator)[:n]
        else:
            idx = torch.randint(count, (n,), generator=generator)
        return kernels[idx.to(kernels.device)]

    def match_layer(self, layer: str, weight_shape: Sequence[int], view: str) -> str:
        """The bank layer that serves a model layer: the same name, else the only one of fitting shape.

        Fitting means the same (kh, kw) for slices and the same (in, kh, kw) for whole filters, so a
        bank built from one model can serve another whose first layer has the same kernel shape.
        """
        def fits(name: str) -> bool:
            bank_shape = tuple(self.filters(name).shape[1:])
            if view == "slice":
                return bank_shape[-2:] == tuple(weight_shape[-2:])
            return bank_shape == tuple(weight_shape[1:])

        if layer in self.layers:
            if fits(layer):
                return layer
            raise UserError(
                f"filter bank layer {layer!r} has filters of shape {tuple(self.filters(layer).shape[1:])}, "
                f"which do not fit the model's weight {tuple(weight_shape)} in the {view!r} view"
            )
        fitting = [name for name in self.layers if fits(name)]
        if len(fitting) == 1:
            return fitting[0]
        raise UserError(
            f"the filter bank has no layer {layer!r} and {len(fitting) or 'no'} layers fitting its weight "
            f"{tuple(weight_shape)} ({view} view); bank layers: "
            + ", ".join(f"{n} {tuple(self.filters(n).shape[1:])}" for n in self.layers)
        )

    def _layer(self, layer: str) -> dict[str, torch.Tensor]:
        if layer not in self.layers:
            raise UserError(f"filter bank has no layer {layer!r}; its layers are: {', '.join(self.layers)}")
        return self.layers[layer]


# ------------------------------------------------------------------------------------ files


def bank_sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_bank(bank: FilterBank, path: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write the bank; `dtype=torch.float16` halves the file (the bank is rounded first, so the hash holds)."""
    from safetensors.torch import save_file

    path = Path(path)
    bank = bank.rounded(dtype)
    tensors = {name: entry["filters"].cpu().to(dtype).contiguous() for name, entry in bank.layers.items()}
    for name, entry in bank.norms.items():
        tensors.update({f"{name}{NORM_SEP}{key}": t.cpu().to(dtype).contiguous() for key, t in entry.items()})
    meta_json = json.dumps(bank.metadata, sort_keys=True, default=str)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={HEADER_KEY: meta_json})
    atomic_write_text(bank_sidecar_path(path), json.dumps(bank.metadata, indent=2, sort_keys=True, default=str) + "\n")
    return path


def load_bank(path: str | Path) -> FilterBank:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise no_such_bank(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise UserError(f"filter bank {path} is not a readable safetensors file: {exc}") from exc
    try:
        metadata = json.loads(header[HEADER_KEY]) if HEADER_KEY in header else read_json(bank_sidecar_path(path), "bank metadata")
    except (json.JSONDecodeError, UserError) as exc:
        raise UserError(f"filter bank {path}: its metadata is missing or not valid JSON ({exc})") from exc
    norms: dict[str, dict[str, torch.Tensor]] = {}
    for key in [k for k in tensors if NORM_SEP in k]:
        layer, _, part = key.partition(NORM_SEP)
        norms.setdefault(layer, {})[part] = tensors.pop(key)
    listed = [n for n in metadata.get("layers", []) if n in tensors]
    order = listed + sorted(set(tensors) - set(listed))
    expected = metadata.get("content_hash")
    missing = sorted(set(norms) - set(tensors))
    if missing:
        raise UserError(f"filter bank {path}: BatchNorm entries for layers without filters: {', '.join(missing)}")
    bank = FilterBank({name: tensors[name] for name in order}, metadata, norms)
    if expected and expected != bank.metadata["content_hash"]:
        raise UserError(
            f"filter bank {path} is corrupt: its content hash is {bank.metadata['content_hash'][:12]}..., "
            f"the metadata says {expected[:12]}..."
        )
    bank.path = path
    return bank


def bank_content_hash(path: str | Path) -> str:
    """The content hash of the bank at `path` (loaded and checked once per file version)."""
    path = Path(path)
    if not path.is_file():
        raise no_such_bank(path)
    stat = path.stat()
    return _content_hash(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _content_hash(path: str, mtime_ns: int, size: int) -> str:
    return load_bank(path).metadata["content_hash"]


def no_such_bank(path: Path) -> UserError:
    return UserError(f"filter bank {path} does not exist: give a bank file (build one with `filterprior collect`) "
                     f"or the name of a bundled bank ({', '.join(bundled_bank_names())})")


def bundled_bank_names() -> list[str]:
    """The banks that ship with the package, by the name `prior.bank` / `init.bank` accept for them."""
    return sorted(path.stem for path in BANKS_DIR.glob("*.safetensors"))


def resolve_bank(value: str | Path) -> Path:
    """A `prior.bank` / `init.bank` value as a file: an existing path as it is, else the bundled bank of that
    name (`airnet-cifar100-networks`), so a recipe can name a bundled bank from any working directory. A value
    that is neither comes back unchanged, and load_bank says what exists."""
    path = Path(value)
    if path.is_file() or path.name != str(value):  # a file, or a path with folders: never a bundled name
        return path
    return bundled_bank(path.stem if path.suffix == ".safetensors" else str(value)) or path


def bundled_bank(name: str) -> Path | None:
    """The bundled bank `<name>.safetensors` in the package's bank folder, or None if none ships by that name."""
    path = BANKS_DIR / f"{name}.safetensors"
    return path if path.is_file() else None


def default_bank_path(model_name: str | None, networks: bool = False) -> Path | None:
    """The bank bundled for a model, or None: `assets/banks/<model>-cifar100.safetensors` (first layer),
    or with `networks` `<model>-cifar100-networks.safetensors` (every conv layer with its BatchNorm,
    float16, for init_mode=network)."""
    if not model_name:
        return None
    return bundled_bank(f"{model_name}-cifar100{'-networks' if networks else ''}")


# ------------------------------------------------------------------------------------ showing


# What `bank show` prints of a source recipe (dotted keys of the run config), in this order.
RECIPE_KEYS = ("epochs", "batch_size", "optim.name", "optim.lr", "optim.schedule", "optim.weight_decay",
               "optim.label_smoothing", "prior.name", "data.dataset", "data.images_per_class", "data.policy",
               "data.crop_padding", "data.flip", "data.cutout")


def _per_source(value: Any, n: int) -> list[Any]:
    """A metadata entry that is one value for all sources, or a list with one per source, as n values."""
    return list(value) if isinstance(value, list) and len(value) == n else [value] * n


def recipe_line(recipe: Mapping[str, Any]) -> str:
    """The recipe's main keys as `key=value` (the whole recipe is in the bank's JSON sidecar)."""
    parts = []
    for key in RECIPE_KEYS:
        value: Any = recipe
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            parts.append(f"{key}={value}")
    return " ".join(parts) or "(no known keys)"


def describe_bank(bank: FilterBank, sidecar_note: str | None = None) -> str:
    """Summary: what the bank holds, where it came from (each source run with its seed, test accuracy
    and dataset; the recipe, one line per distinct recipe), and its layers."""
    meta = bank.metadata
    accs = [a for a in meta.get("source_test_acc") or [] if isinstance(a, (int, float))]
    acc = f", source test acc {sum(accs) / len(accs):.4f} (n={len(accs)})" if accs else ""
    lines = [
        f"filter bank {meta['content_hash'][:12]}: model {meta.get('model', '?')} "
        f"on {meta.get('source_dataset', '?')}, "
        f"{meta.get('networks', '?')} network{'' if meta.get('networks') == 1 else 's'}, seeds {meta.get('seeds', '?')}{acc}",
        f"  created {meta.get('created', '?')}",
    ]
    sources = meta.get("sources")
    if isinstance(sources, list) and sources:
        n = len(sources)
        lines.append("  sources:")
        for path, seed, test_acc, dataset in zip(sources, _per_source(meta.get("seeds"), n),
                                                 _per_source(meta.get("source_test_acc"), n),
                                                 _per_source(meta.get("source_dataset"), n)):
            acc_text = f"{test_acc:.4f}" if isinstance(test_acc, (int, float)) else "?"
            lines.append(f"    {path}: seed {seed if seed is not None else '?'}, test acc {acc_text}, "
                         f"data {dataset if dataset is not None else '?'}")
    recipes = meta.get("recipe")
    if isinstance(recipes, Mapping):
        lines.append(f"  recipe: {recipe_line(recipes)}")
    elif isinstance(recipes, list):  # the sources' recipes differ: one per source, in the order of sources
        labels = [str(p) for p in sources] if isinstance(sources, list) and len(sources) == len(recipes) \
            else [f"source {i}" for i in range(len(recipes))]
        for label, recipe in zip(labels, recipes):
            text = recipe_line(recipe) if isinstance(recipe, Mapping) else "unknown (not a run directory)"
            lines.append(f"  recipe of {label}: {text}")
    for name, entry in bank.layers.items():
        f, s = entry["filters"], entry["slices"]
        n, cin, kh, kw = f.shape
        lines.append(
            f"  {name}: {n} filters of {cin}x{kh}x{kw} ({s.shape[0]} slices), weight std {f.std().item():.4f}, "
            f"mean slice norm {s.flatten(1).norm(dim=1).mean().item():.4f}"
            + (", with each filter's BatchNorm" if name in bank.norms else "")
        )
    if sidecar_note:
        lines.append(f"  {sidecar_note}")
    return "\n".join(lines)


def sidecar_note(path: str | Path, bank: FilterBank) -> str:
    """Where the full metadata is for people (the JSON sidecar), or what is wrong with the sidecar: the
    metadata stored inside the bank is the one used, so a sidecar edited or replaced by hand is named."""
    sidecar = bank_sidecar_path(path)
    if not sidecar.is_file():
        return f"no metadata sidecar {sidecar} (the metadata stored inside the bank is shown)"
    try:
        side = read_json(sidecar, "bank metadata")
    except UserError as exc:
        return f"the sidecar is unreadable, ignored: {exc}"
    inside = json.loads(json.dumps(bank.metadata, default=str))  # as JSON stores it (tuples as lists)
    differ = sorted(k for k in set(side) | set(inside) if side.get(k) != inside.get(k))
    if differ:
        return (f"sidecar {sidecar} differs from the metadata stored inside the bank in {', '.join(differ)}; "
                "the bank's own metadata is shown and used")
    return f"full metadata (whole recipes): {sidecar}"


def show_bank(
    path: str | Path, picture_path: str | Path, layer: str | None = None, count: int = 64, seed: int = 0
) -> str:
    """Return the bank's summary text and draw `count` random kernels of one layer (default: first),
    or all of them when it holds fewer (sampling would repeat some).

    An RGB layer is drawn as whole colour filters, as the run directories draw a model's first layer,
    so the bank's picture and a run's filters_start/end.png can be compared side by side.
    """
    from filterprior.figures.filters import plot_filter_grid

    bank = load_bank(path)
    layer = layer or bank.layer_names[0]
    view = "filter" if bank.filters(layer).shape[1] == 3 else "slice"
    count = min(count, bank.kernels(layer, view).shape[0])
    kernels = bank.sample(layer, count, view, torch.Generator().manual_seed(seed))
    plot_filter_grid(kernels, picture_path, title=f"{Path(path).name}: {layer}", max_kernels=count)
    return describe_bank(bank, sidecar_note(path, bank))


# ------------------------------------------------------------------------------------ helpers
