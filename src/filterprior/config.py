"""Run configuration: dataclasses, loadable from YAML, overridable with dotted `key=value` pairs.

Every key is validated: an unknown key is an error that lists the valid ones, and a value of the wrong
type is an error that names the key and the expected type; `validate_config` then checks the ranges of
the values (epochs >= 1, lr > 0, ...) before a run writes anything. The resolved config is written to
`config.yaml` in the run directory, so a run can be repeated from that file alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from importlib import resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from filterprior.errors import UserError
from filterprior.utils import atomic_write_text, read_yaml


# data.image_size: images are resized to this square side; the decoded set is N * side^2 * 3 bytes, so a
# side of 4096 makes 50 MB of every image (21 GB for a small test set): refused. Here (the bottom layer)
# so that validation and data/limits.py (which reading and eval use) share one bound.
MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 512


def image_size_ok(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and MIN_IMAGE_SIZE <= value <= MAX_IMAGE_SIZE


@dataclass
class DataConfig:
    dataset: str = "cifar10"  # cifar10 | cifar100 | mini | a folder, .tar.gz or official CIFAR archive
    root: str | None = None  # data root; else $FILTERPRIOR_DATA; else ~/.cache/filterprior/data
    download: bool = True  # fetch the official CIFAR archive when it is not in the data root
    images_per_class: int | None = None  # None: every training image outside the validation pool
    split_seed: int = 0  # drives which images form the subset (the validation pool is fixed)
    val_per_class: int | None = None  # None: the dataset's default pool (500/class CIFAR-10, 100 CIFAR-100)
    test_fraction: float = 0.2  # image folders without test/: fraction of each class held out as test
    image_size: int = 32  # folders with other sizes are resized to this (8..512)
    crop_padding: int = 4  # random crop with this zero padding; 0 switches it off
    flip: bool = True  # random horizontal flip
    cutout: int = 0  # side of the cutout square; 0 switches it off
    mean: list[float] | None = None  # None: measured on the training images
    std: list[float] | None = None
    # strong augmentation, after crop and flip, before cutout: none | autoaugment (the CIFAR-10 policy) |
    # randaugment | trivialaugment (TrivialAugmentWide); operations drawn per image
    policy: str = "none"
    randaugment_n: int = 2  # RandAugment: operations per image
    randaugment_m: int = 9  # RandAugment: magnitude, 0..30
    mixup: float = 0.0  # mixup's Beta(alpha, alpha); 0: off
    cutmix: float = 0.0  # CutMix's Beta(alpha, alpha); 0: off
    mix_prob: float = 1.0  # chance a batch is mixed when mixup or cutmix is on (both on: half each)


@dataclass
class ModelConfig:
    name: str = "filternet-s2"
    options: dict[str, Any] = field(default_factory=dict)  # passed to the model's constructor


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 5e-4  # applied to tensors with dim >= 2 only (not biases, not norms)...
    decay_all: bool = False  # ...unless true: every parameter, as a torch optimiser given model.parameters()
    schedule: str = "cosine"  # constant | step | cosine | onecycle
    warmup_epochs: float = 0.0  # linear warm-up (constant, step, cosine)
    step_epochs: int = 30  # step schedule: decay every this many epochs
    gamma: float = 0.1  # step schedule: decay factor
    label_smoothing: float = 0.0


@dataclass
class PriorConfig:
    name: str = "none"  # none | l2 | l2-sp | gaussian | mmd | adversarial
    weight: float = 1.0  # lambda: the prior's loss is multiplied by this
    warmup_epochs: float = 0.0  # lambda ramps linearly from 0 over this many epochs
    layers: list[str] = field(default_factory=list)  # conv layer names; empty: the first conv layer; [all]: every one
    bank: str | None = None  # filter bank file; None: the bundled bank for the model
    view: str = "slice"  # slice: 2-D (out*in, kh, kw) kernels | filter: whole (out, in, kh, kw) filters
    normalize: str = "unit"  # unit: zero-mean, unit-norm per kernel | none: raw kernels
    kernels_per_step: int = 128  # real and fake kernels per step
    # adversarial
    loss: str = "bce"  # bce (non-saturating) | hinge | wgan-gp
    d_arch: str = "conv"  # conv (the seed's) | mlp
    spectral_norm: bool = False
    d_steps: int = 1
    d_lr: float = 2e-4
    d_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    seed_faithful: bool = False  # first layer, raw kernels, BCE, lambda 1, the seed's D
    # mmd
    mmd_bandwidths: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    # init-from-bank (combinable with any prior above)
    init_from_bank: bool = False
    # sample: each layer's kernels drawn at random from the bank (any source network) |
    # network: whole filters of one source network, in order, for every layer (transfer of its conv features)
    init_mode: str = "sample"
    init_layers: list[str] = field(default_factory=list)  # empty: prior.layers (network mode: every bank layer)
    freeze: str = "none"  # none | first | all: keep the first / every bank-initialised conv layer as it is


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    epochs: int = 30
    batch_size: int = 128
    eval_batch_size: int = 500
    tta: str = "none"  # test-time augmentation for validation and test: none | flip (mean of image and mirror)
    seed: int = 0  # model init, shuffling, augmentation, dropout
    ema: float = 0.0  # decay of an exponential moving average of the weights, evaluated and exported; 0: off
    device: str = "auto"  # auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps
    threads: int | None = None  # torch CPU threads; None or 0: torch's default
    channels_last: bool = False  # NHWC memory format for model and batches (faster oneDNN/cuDNN kernels)
    val_every: int = 0  # evaluate on the validation pool every N epochs; 0: only at the end
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch is always saved)
    test: bool = True  # evaluate the test set once at the end; tuning runs switch it off (never seen)
    filter_pictures: bool = True  # filter grids of the first conv layer at start and end
    progress: bool = True  # tqdm bars (switched off anyway when stdout is not a terminal)
    sync_batchnorm: bool = False  # under torchrun (DDP, CUDA only): BatchNorm statistics over the global batch


# ----------------------------------------------------------------------------------------- helpers


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


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return _from_dict(TrainConfig, data or {})


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    data = read_yaml(path, "config file") or {}
    try:
        return config_from_dict(data)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc


def packaged_config(name: str) -> Path:
    """A recipe shipped inside the package (src/filterprior/configs/<name>)."""
    return Path(str(resources.files("filterprior") / "configs" / name))


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply `section.key=value` pairs; values are parsed as YAML (so `[1,2]`, `true`, `1e-3` work)."""
    data = config_to_dict(cfg)
    keys = set(valid_keys())
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. optim.lr=0.1)")
        key, raw = item.split("=", 1)
        key = key.strip()
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


# Keys added after runs were recorded. At their default they are left out of the hash, so a config
# written before they existed hashes as it did then (the study and --resume compare these hashes).
LATER_KEYS = ("data.policy", "data.randaugment_n", "data.randaugment_m", "data.mixup", "data.cutmix",
              "data.mix_prob", "ema", "sync_batchnorm")


def config_hash(cfg: TrainConfig) -> str:
    """Short stable hash of the resolved config (used by the study to spot changed cells)."""
    data = config_to_dict(cfg)
    defaults = config_to_dict(TrainConfig())
    for key in LATER_KEYS:
        *sections, name = key.split(".")
        node, default = data, defaults
        for section in sections:
            node, default = node[section], default[section]
        if node[name] == default[name]:
            del node[name]
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


# -------------------------------------------------------------------------------------- validation
# Types are checked while the config is built; values are checked here, once it is complete (a base
# file may be fixed up by later overrides). engine.train calls this before it writes anything.


def _finite_above_0(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _finite_from_0(v: float) -> bool:
    return math.isfinite(v) and v >= 0


def _fraction(v: float) -> bool:  # [0, 1): momentum, betas, label smoothing
    return 0 <= v < 1


def _betas(v: list[float]) -> bool:
    return len(v) == 2 and all(_fraction(b) for b in v)


TTA_MODES = ("none", "flip")
POLICIES = ("none", "autoaugment", "randaugment", "trivialaugment")  # data.policy

# (dotted key, test, what is expected)
_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("epochs", lambda v: v >= 1, "1 or more"),
    ("batch_size", lambda v: v >= 1, "1 or more"),
    ("eval_batch_size", lambda v: v >= 1, "1 or more"),
    ("tta", lambda v: v in TTA_MODES, f"one of {', '.join(TTA_MODES)}"),
    ("threads", lambda v: v is None or v >= 0, "0 or more (0 or null: torch's default)"),
    ("val_every", lambda v: v >= 0, "0 or more (0: only at the end)"),
    ("data.images_per_class", lambda v: v is None or v >= 1, "1 or more (null: every training image)"),
    ("data.val_per_class", lambda v: v is None or v >= 0, "0 or more (null: the dataset's default)"),
    ("data.test_fraction", lambda v: 0 < v < 1, "between 0 and 1 (exclusive)"),
    ("data.image_size", image_size_ok, f"from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}"),
    ("data.crop_padding", lambda v: v >= 0, "0 or more (0: off)"),
    ("data.cutout", lambda v: v >= 0, "0 or more (0: off)"),
    ("data.policy", lambda v: v in POLICIES, f"one of {', '.join(POLICIES)}"),
    ("data.randaugment_n", lambda v: v >= 1, "1 or more"),
    ("data.randaugment_m", lambda v: 0 <= v <= 30, "in 0..30"),
    ("data.mixup", _finite_from_0, "a finite number, 0 or more (0: off)"),
    ("data.cutmix", _finite_from_0, "a finite number, 0 or more (0: off)"),
    ("data.mix_prob", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("ema", _fraction, "in [0, 1) (0: off)"),
    ("optim.lr", _finite_above_0, "a finite number above 0"),
    ("optim.momentum", _fraction, "in [0, 1)"),
    ("optim.betas", _betas, "two numbers, each in [0, 1)"),
    ("optim.weight_decay", _finite_from_0, "a finite number, 0 or more"),
    ("optim.label_smoothing", _fraction, "in [0, 1)"),
    ("optim.warmup_epochs", _finite_from_0, "a finite number, 0 or more"),
    ("optim.step_epochs", lambda v: v >= 1, "1 or more"),
    ("optim.gamma", _finite_above_0, "a finite number above 0"),
    ("prior.weight", _finite_from_0, "a finite number, 0 or more"),
    ("prior.warmup_epochs", _finite_from_0, "a finite number, 0 or more"),
    ("prior.kernels_per_step", lambda v: v >= 2, "2 or more"),
    ("prior.d_steps", lambda v: v >= 1, "1 or more"),
    ("prior.d_lr", _finite_above_0, "a finite number above 0"),
    ("prior.d_betas", _betas, "two numbers, each in [0, 1)"),
    ("prior.mmd_bandwidths", lambda v: len(v) > 0 and all(_finite_above_0(b) for b in v),
     "one or more finite numbers above 0"),
]


def _get(cfg: TrainConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _check_normalisation(data: DataConfig) -> None:
    """data.mean/std replace the measured statistics only as a pair: one alone would be ignored."""
    if (data.mean is None) != (data.std is None):
        given, missing = ("data.mean", "data.std") if data.mean is not None else ("data.std", "data.mean")
        raise UserError(f"{given} is set without {missing}: give both (3 numbers each, one per RGB channel) "
                        "or neither (measured on the training images)")
    if data.mean is None:
        return
    if len(data.mean) != 3 or len(data.std) != 3:
        raise UserError(f"data.mean and data.std need 3 numbers each (one per RGB channel), "
                        f"got {data.mean!r} and {data.std!r}")
    if not all(math.isfinite(m) for m in data.mean):
        raise UserError(f"data.mean must hold finite numbers, got {data.mean!r}")
    if not all(_finite_above_0(s) for s in data.std):
        raise UserError(f"data.std must hold finite numbers above 0, got {data.std!r}")


def validate_config(cfg: TrainConfig) -> None:
    """Raise UserError naming the first key whose value is out of range."""
    check_ranges(cfg)
    _check_normalisation(cfg.data)


def check_ranges(section: Any, prefix: str = "") -> None:
    """Apply the value rules under `prefix` to `section`: the whole TrainConfig (prefix ""), or one of
    its sections, e.g. a PriorConfig with prefix "prior." (a prior checks its own config this way)."""
    for key, ok, expected in _RULES:
        if key.startswith(prefix):
            value = _get(section, key[len(prefix):])
            if not ok(value):
                raise UserError(f"{key} must be {expected}, got {value!r}")


def effective_config(cfg: PriorConfig) -> PriorConfig:
    """The config a prior really runs with: `seed_faithful` forces the seed project's choices.

    The seed used the first conv layer, raw 2-D slices, BCE and its conv discriminator without spectral
    norm; its lambda was 1, which is our default, but `weight` is still taken from the config.
    """
    if not cfg.seed_faithful:
        return cfg
    return dataclasses.replace(
        cfg, layers=[], normalize="none", view="slice", loss="bce", d_arch="conv", spectral_norm=False
    )
