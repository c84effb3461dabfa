"""Data-parallel training under torchrun: torch.distributed and DistributedDataParallel, nothing home-made.

`torchrun --nproc_per_node N -m filterprior train ...` starts N processes and tells each, in environment
variables, its RANK, LOCAL_RANK, WORLD_SIZE and where the group meets (MASTER_ADDR, MASTER_PORT). `setup`
joins that group: gloo on CPU, nccl on CUDA with each rank on its own GPU (cuda:LOCAL_RANK). Without
those variables (a plain `filterprior train`) every function here is a no-op for a world of one.

How a run is shared out (the hooks in engine.py, data/pipeline.py and commands/train.py):
- `batch_size` is the GLOBAL batch. The loader gives rank r a contiguous slice of each batch the single
  process would see, augmented exactly as there (data/loader.py); DDP averages the gradients, and
  `share_weight` rescales each rank's data loss so that uneven shares still average to the global mean.
  With mixup/CutMix, whose partners come from the whole batch, each rank loads and mixes the whole batch
  and keeps its share (`take_share`): that costs each rank the augmentation of the whole batch, little
  beside a training step. Where a rank's share cannot equal the single process's slice: BatchNorm's
  batch statistics (each share's own, unless sync_batchnorm, CUDA only) and dropout masks (drawn per
  rank from the same seed). A last batch too short for 2 images a rank is dropped.
- Epoch sums (losses, correct, seen) are all-reduced once an epoch: the logged figures are the global
  batch's. The prior's losses act on weights that are identical on every rank, so every rank adds the
  full prior loss; DDP's average of N identical prior gradients is that gradient, unscaled.
- The prior's own update (the adversarial prior's discriminators) runs on every rank from identical
  inputs (the same weights after DDP's step, the same generator draws), so its state stays identical
  without any communication; rank 0's copy is what the checkpoint keeps. Why not rank 0 alone and a
  broadcast: that is a collective every step with the other ranks idle meanwhile, while a discriminator
  is small enough that repeating its update costs little. On CUDA, non-deterministic kernels could let
  the copies drift by rounding; that is harmless (DDP averages the classifier's gradients, so the
  classifier stays identical, and rank 0's copy is checkpointed and resumed everywhere).
- Rank 0 alone writes: run directory, config, env.json, pictures, TensorBoard, metrics, checkpoints and
  the final outputs; the others receive its final metrics. Evaluation runs on the plain module (never
  through DDP, which would start a collective), so rank 0's test accuracy is a single process's.

A rank that dies ends the job: torchrun sees its exit and stops the others. A rank that hangs is found
by the process group's timeout (FILTERPRIOR_DIST_TIMEOUT_S, default 1800 s, torch's own default for
gloo), after which the waiting ranks stop with one line saying so (`peers_explained`).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import itertools
import os
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from filterprior.errors import UserError

T = TypeVar("T")
TIMEOUT_ENV = "FILTERPRIOR_DIST_TIMEOUT_S"


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from None


def ranks() -> Ranks:
    """This process's place in the group: from the joined group, else from torchrun's variables."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return Ranks(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))


def _timeout() -> datetime.timedelta:
    value = os.environ.get(TIMEOUT_ENV, "1800")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UserError(f"{TIMEOUT_ENV}={value!r}: expected a positive number of seconds")
    return datetime.timedelta(seconds=seconds)


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group (once; later calls only return the device) and return this rank's
    device: cuda:LOCAL_RANK for CUDA, the CPU otherwise. A world of one is left alone."""
    r = ranks()
    if not r.distributed:
        return device
    if device.type == "cuda":
        if r.local_rank >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {r.local_rank} has no GPU: {torch.cuda.device_count()} visible; "
                            "start torchrun with --nproc_per_node at most the number of GPUs")
        device = torch.device("cuda", r.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UserError(f"device {device.type!r} has no torch.distributed backend; "
                        "under torchrun use device=cuda (nccl) or device=cpu (gloo)")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=_timeout(),
                                device_id=device if device.type == "cuda" else None)
        atexit.register(shutdown)
    return device


def shutdown() -> None:
    """Leave the process group (torch warns at exit about a group never destroyed). At exit, after an error
    too: no collective here, since a peer may be gone."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave() -> None:
    """The end of a job that went well on every rank: wait for all ranks, then leave the group now, while the
    interpreter is whole.

    Why: a gloo worker thread drops a finished collective's tensors a moment after the caller's wait
    returns, and dropping a tensor made in Python needs the GIL. If the main thread meanwhile runs on into
    interpreter shutdown, that thread finds the interpreter gone and the process aborts ("terminate called
    without an active exception", exit -6; core dump: AsyncBroadcastWork::~AsyncBroadcastWork -> take_gil ->
    pthread_exit). Hence the objects rank 0 shares (`run_on_main`, `share_from_main`, the last words of a
    run) go through the group's store, not a collective, and the barrier here (its tensor made in C++)
    is the last collective. An upstream fix, pytorch PR 179291, was abandoned."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    shutdown()


def check_batch_size(batch_size: int) -> None:
    """Every rank needs at least two images of every global batch (BatchNorm, and a mean over nothing)."""
    world = ranks().world
    if world > 1 and batch_size < 2 * world:
        raise UserError(f"batch_size {batch_size} is the global batch, shared by {world} processes; "
                        f"it must be at least {2 * world} (2 images a process)")


def share_weight(local: int, global_: int) -> float:
    """Factor for a rank's mean data loss so that DDP's average over ranks is the global batch's mean:
    world * local / global (1.0 when the shares are equal)."""
    world = ranks().world
    return world * local / global_


def take_share(images: torch.Tensor, targets: Any) -> tuple[torch.Tensor, Any]:
    """This rank's contiguous share of a whole batch and of its `data.mixing.Targets` (labels, partners'
    labels; the batch's lam stays): with mixup/CutMix each rank mixes the whole batch, then keeps its share."""
    from filterprior.data.loader import shard_bounds

    r = ranks()
    lo, hi = shard_bounds(0, len(images), r.rank, r.world)
    partner = targets.partner[lo:hi] if targets.partner is not None else None
    return images[lo:hi], dataclasses.replace(targets, labels=targets.labels[lo:hi], partner=partner)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers computing their statistics over the global batch (torch's SyncBatchNorm)."""
    if not ranks().distributed:
        return model  # one process: the batch is already the global batch
    if device.type != "cuda":
        raise UserError("sync_batchnorm=true needs CUDA: torch's SyncBatchNorm does not run on the CPU; "
                        "set sync_batchnorm=false (each process then normalises its own share)")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The module that training calls: DDP around `model` in a group, `model` itself otherwise. DDP
    broadcasts rank 0's weights and buffers at construction, so every rank starts from the same ones."""
    if not ranks().distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sums(values: dict[str, Any], device: torch.device) -> dict[str, float]:
    """Each value (a float, or a one-element tensor such as a loop's on-device sum) summed over all ranks, in
    one all-reduce (float64); read back once."""
    if not ranks().distributed:
        return {k: float(v) for k, v in values.items()}
    keys = sorted(values)
    packed = torch.stack([torch.as_tensor(values[k], device=device).to(torch.float64).reshape(()) for k in keys])
    dist.all_reduce(packed)
    return dict(zip(keys, packed.tolist()))


def run_on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 alone and give every rank its result; a UserError it raises is raised on every
    rank with the same message (so all exit 2 together instead of the others waiting for a timeout)."""
    if not ranks().distributed:
        return fn()
    outcome: tuple[str, Any] | None = None
    if ranks().main:
        try:
            outcome = ("ok", fn())
        except UserError as exc:
            outcome = ("error", str(exc))
    kind, value = share_from_main(outcome)
    if kind == "error":
        raise UserError(value)
    return value


_shares = itertools.count()  # every rank shares in the same order, so the n-th share has the same key


def share_from_main(value: T) -> T:
    """Rank 0's `value` on every rank (the others pass anything, e.g. None), pickled through the group's
    key-value store: no tensor, so nothing for a gloo worker to drop after the interpreter ends (`leave`).
    The others wait up to the group's timeout; a peer gone before it shares is a DistStoreError, which
    `peers_explained` puts in one line."""
    if not ranks().distributed:
        return value
    store = dist.distributed_c10d._get_default_store()
    key = f"filterprior/share/{next(_shares)}"
    if ranks().main:
        store.set(key, pickle.dumps(value))
        return value
    return pickle.loads(store.get(key))


def describe() -> dict[str, Any]:
    """For env.json: how many processes trained the run, over which backend (nothing for one process)."""
    if not ranks().distributed or not dist.is_initialized():
        return {}
    return {"world_size": ranks().world, "backend": dist.get_backend()}


def reduce_epoch(sums: dict[str, float], correct: float, seen: float,
                 device: torch.device) -> tuple[dict[str, float], float, float]:
    """An epoch's per-rank sums (loss x images, correct, seen) as the global batch's, on every rank."""
    packed = all_reduce_sums({**{f"sum:{k}": v for k, v in sums.items()}, "correct": correct, "seen": seen}, device)
    return {k[4:]: v for k, v in packed.items() if k.startswith("sum:")}, packed["correct"], packed["seen"]


@contextlib.contextmanager
def peers_explained() -> Iterator[None]:
    """Under DDP, a failed collective (a peer that died, or hung past the timeout) becomes one UserError
    line naming this rank, instead of a traceback through autograd; anything else passes unchanged."""
    try:
        yield
    except RuntimeError as exc:
        if not ranks().distributed or not _is_collective_failure(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"rank {ranks().rank}: another process of this torchrun job stopped answering (it crashed, was killed, "
            f"or hung past {TIMEOUT_ENV}={_timeout().total_seconds():g} s); torchrun's summary names the first "
            f"failure. torch said: {first}") from exc


def _is_collective_failure(exc: RuntimeError) -> bool:
    text = str(exc)
    # "pair closure": gloo's words when the peer timed out in a buffer broadcast (DDP's forward), not in a
    # gradient all-reduce: seen under load, where the hung peer is found at the next forward
    return (isinstance(exc, getattr(dist, "DistError", ())) or "gloo" in text or "NCCL" in text
            or "pair closure" in text)
