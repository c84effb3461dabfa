"""The run configuration's sections as dataclasses: every key, its default and what it means."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


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
class AdversarialConfig:
    """prior.adversarial.*: the adversarial prior's discriminator and its training (no other prior reads it)."""

    loss: str = "bce"  # bce (non-saturating) | hinge | wgan-gp
    d_arch: str = "conv"  # conv (the seed's) | mlp
    spectral_norm: bool = False
    d_steps: int = 1
    d_lr: float = 2e-4
    d_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    seed_faithful: bool = False  # first layer, raw kernels, BCE, lambda 1, the seed's D


@dataclass
class MMDConfig:
    """prior.mmd.*: the MMD prior's kernel (no other prior reads it)."""

    bandwidths: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])  # x the bank's median distance


@dataclass
class PriorConfig:
    """prior.*: the loss term over the conv filters, added to the classifier's loss each step."""

    name: str = "none"  # none | l2 | l2-sp | gaussian | mmd | adversarial
    weight: float = 1.0  # lambda: the prior's loss is multiplied by this
    warmup_epochs: float = 0.0  # lambda ramps linearly from 0 over this many epochs
    layers: list[str] = field(default_factory=list)  # conv layer names; empty: the first conv layer; [all]: every one
    bank: str | None = None  # filter bank file or a bundled bank's name; None: the bundled bank for the model
    view: str = "slice"  # slice: 2-D (out*in, kh, kw) kernels | filter: whole (out, in, kh, kw) filters
    normalize: str = "unit"  # unit: zero-mean, unit-norm per kernel | none: raw kernels
    kernels_per_step: int = 128  # real and fake kernels per step
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    mmd: MMDConfig = field(default_factory=MMDConfig)


@dataclass
class InitConfig:
    """init.*: the model's conv layers filled from a filter bank before training (combinable with any
    prior, or none)."""

    from_bank: bool = False
    # sample: each layer's kernels drawn at random from the bank (any source network) |
    # network: whole filters of one source network, in order, for every layer (transfer of its conv features)
    mode: str = "sample"
    layers: list[str] = field(default_factory=list)  # empty: prior.layers (network mode: every bank layer)
    freeze: str = "none"  # none | first | all: keep the first / every bank-initialised conv layer as it is
    bank: str | None = None  # filter bank file or bundled name; None: prior.bank, else the bundled bank for the model


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    init: InitConfig = field(default_factory=InitConfig)
    epochs: int = 30
    batch_size: int = 128
    eval_batch_size: int = 500
    tta: str = "none"  # test-time augmentation for validation and test: none | flip (mean of image and mirror) |
    # flip-shift (mean over image and mirror, each also moved 3 pixels up, down, left and right: ten views) |
    # flip-shift-diagonal (the same and the four diagonal moves: 18 views)
    seed: int = 0  # model init, shuffling, augmentation, dropout
    ema: float = 0.0  # decay of an exponential moving average of the weights, evaluated and exported; 0: off
    device: str = "auto"  # auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps
    threads: int | None = None  # torch CPU threads; None or 0: torch's default
    channels_last: bool = False  # NHWC memory format for model and batches (faster oneDNN/cuDNN kernels)
    amp: str = "off"  # mixed precision of the model's forward pass: off | bf16 | fp16 (fp16 adds a grad scaler)
    compile: bool = False  # torch.compile the model (checkpoints and weights stay plain state dicts)
    deterministic: bool = False  # deterministic kernels (cuDNN, cuBLAS); off: cudnn.benchmark picks the fastest
    val_every: int = 0  # evaluate on the validation pool every N epochs; 0: only at the end
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch is always saved)
    test: bool = True  # evaluate the test set once at the end; tuning runs switch it off (never seen), and a
    # study run without --hide-test reads it later from the weights (train/testset.py)
    filter_pictures: bool = True  # filter grids of the first conv layer at start and end
    progress: bool = True  # tqdm bars (switched off anyway when stdout is not a terminal)
    sync_batchnorm: bool = False  # under torchrun (DDP, CUDA only): BatchNorm statistics over the global batch


def effective_config(cfg: PriorConfig) -> PriorConfig:
    """The config a prior really runs with: `adversarial.seed_faithful` forces the seed project's choices.

    The seed used the first conv layer, raw 2-D slices, BCE and its conv discriminator without spectral
    norm; its lambda was 1, which is our default, but `weight` is still taken from the config.
    """
    if not cfg.adversarial.seed_faithful:
        return cfg
    gan = dataclasses.replace(cfg.adversarial, loss="bce", d_arch="conv", spectral_norm=False)
    return dataclasses.replace(cfg, layers=[], normalize="none", view="slice", adversarial=gan)
