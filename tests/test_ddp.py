"""Data-parallel training under torchrun, on the CPU with gloo and 2 processes (real torch.distributed).

Every torchrun job is `python -m torch.distributed.run --standalone` (it picks a free port itself), so
tests may run side by side. What is compared, and how closely, is said at each test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from filterprior.banks.bank import FilterBank, save_bank
from filterprior.banks.views import normalize_kernels
from filterprior.commands import main
from filterprior.config import TrainConfig, apply_overrides
from filterprior.data.loader import AugmentConfig, TensorLoader
from filterprior.data.pipeline import prepare_data
from filterprior.errors import UserError
from filterprior.priors.discriminators import build_discriminator
from filterprior.train import distributed
from filterprior.train.checkpoint import load_checkpoint

MINI = ["--data", "mini", "--images-per-class", "4", "threads=1", "progress=false", "filter_pictures=false"]


def _one_process(*args: str) -> list[str]:
    return [sys.executable, "-m", "filterprior", "train", *args]


def _torchrun(*args: str, nproc: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "filterprior", "train", *args]


def _run(cmd: list[str], expect_ok: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run to the end (3 minutes at most); on a timeout the whole process group goes, workers included."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if expect_ok:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "weights.safetensors"))


# ---------------------------------------------------------------------------------- the loader's shares


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("policy", ["none", "trivialaugment"])
def test_the_shares_of_each_batch_put_together_are_the_single_process_batch(world, policy):
    """Order, crops, flips, cutout and a policy's operations are drawn for the whole epoch, so each rank's
    contiguous slice of a batch is exactly that slice of the single process's batch, image for image."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (23, 8, 8, 3), generator=g, dtype=torch.uint8)
    labels = torch.arange(23) % 5
    augment = AugmentConfig(crop_padding=2, flip=True, cutout=3, policy=policy)

    def loader(shard):
        return TensorLoader(images, labels, 7, shuffle=True, augment=augment, mean=(0.5,) * 3, std=(0.25,) * 3,
                            seed=3, shard=shard)

    single = loader((0, 1))
    shards = [loader((r, world)) for r in range(world)]
    for epoch in (0, 4):
        for part in [single, *shards]:
            part.set_epoch(epoch)
        expected = list(single)
        got = list(zip(*shards))
        assert len(got) == len(expected) == 4  # 7 + 7 + 7 + a short last batch of 2
        for b, ((x, y), parts) in enumerate(zip(expected, got)):
            sizes = [len(py) for _, py in parts]
            assert sum(sizes) == single.global_batch_size(b) == len(y)
            assert max(sizes) - min(sizes) <= 1
            torch.testing.assert_close(torch.cat([px for px, _ in parts]), x, rtol=0, atol=0)
            assert torch.equal(torch.cat([py for _, py in parts]), y)


def test_a_last_batch_too_small_to_share_is_dropped_under_ddp():
    """One process drops only a last batch of one image; 2 processes drop one under 4 (2 per process)."""
    cfg = apply_overrides(TrainConfig(), ["data.dataset=mini", "data.images_per_class=4", "batch_size=13"])
    assert len(prepare_data(cfg, torch.device("cpu")).train_loader) == 3  # 40 = 3 x 13 + 1: dropped
    cfg = apply_overrides(TrainConfig(), ["data.dataset=mini", "data.images_per_class=4", "batch_size=12"])
    one = prepare_data(cfg, torch.device("cpu")).train_loader  # 40 = 3 x 12 + 4
    two = prepare_data(cfg, torch.device("cpu"), shard=(1, 2)).train_loader
    assert len(one) == len(two) == 4
    cfg = apply_overrides(TrainConfig(), ["data.dataset=mini", "data.images_per_class=4", "batch_size=37"])
    assert len(prepare_data(cfg, torch.device("cpu")).train_loader) == 2  # 40 = 37 + 3
    assert len(prepare_data(cfg, torch.device("cpu"), shard=(0, 2)).train_loader) == 1  # 3 < 2 x 2: dropped


def test_settings_that_cannot_work_under_ddp_are_refused_by_name(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(UserError, match="batch_size 3 is the global batch.*at least 4"):
        distributed.check_batch_size(3)
    distributed.check_batch_size(4)
    with pytest.raises(UserError, match="sync_batchnorm=true needs CUDA"):
        distributed.convert_sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)), torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "1")
    distributed.check_batch_size(1)  # one process: unchanged rules
    bn = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    assert distributed.convert_sync_batchnorm(bn, torch.device("cpu")) is bn


# ---------------------------------------------------------------------------------- torchrun end to end


@pytest.mark.slow
def test_torchrun_writes_one_run_directory_once(tmp_path, capsys):
    """Rank 0 alone picks the default run directory and writes into it: one directory, one TensorBoard
    file, one line of the final result, metrics of the global batch; its test accuracy is what one process
    (`filterprior eval`) measures for the exported weights."""
    done = _run(_torchrun(*MINI, "--model", "simplecnn", "--epochs", "2", "batch_size=8", "--quiet"), cwd=tmp_path)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    for name in ("config.yaml", "env.json", "metrics.csv", "metrics.json", "checkpoint.pt", "weights.safetensors",
                 "confusion.csv", "curves.png"):
        assert (run / name).is_file(), name
    assert len(list((run / "tb").iterdir())) == 1
    assert done.stdout.count("test accuracy") == 1  # rank 1 prints nothing
    env = json.loads((run / "env.json").read_text())
    assert env["world_size"] == 2 and env["backend"] == "gloo"
    lines = (run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("2,10,")  # 40 images, global batch 8: 5 steps an epoch
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] == 2 and state["step"] == 10
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_images"] == 40
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_acc"] == metrics["test_acc"]

    # Rank 0 refuses the finished run as --out; rank 1 gets the same one-line error instead of waiting.
    again = _run(_torchrun(*MINI, "--model", "simplecnn", "--out", str(run)), expect_ok=False)
    assert again.returncode != 0
    assert again.stderr.count(f"error: run directory {run} is not empty (it holds a finished run)") == 2, again.stderr


def _toy_bank(path: Path) -> Path:
    """5x5 kernels for mynet-small's first conv (layer '0'), so the adversarial prior runs on a model
    without BatchNorm or dropout."""
    g = torch.Generator().manual_seed(0)
    return save_bank(FilterBank({"0": torch.randn(40, 3, 5, 5, generator=g)}, {"model": "toy"}), path)


def _discriminator_state(prior_state: dict, layer: str) -> dict:
    prefix = f"discriminators.{layer}."
    return {k[len(prefix):]: v for k, v in prior_state.items() if k.startswith(prefix)}


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains(tmp_path):
    """Same global batch (7: shares of 4 + 3, a last batch of 5: 3 + 2), the adversarial prior on, a model
    with no BatchNorm and no dropout, crop, flip, TrivialAugment, cutout and CutMix on: the 2-process run
    ends where the 1-process run does.

    Not bit for bit: DDP averages two shares' gradients where one process takes one mean over the batch,
    so float sums run in another order (about 1e-7 relative a step), and lr 0.1 grows that over 18 steps.
    Measured: weights 4e-8 apart with this recipe, 3e-6 with CutMix alone. Tolerance: weights 1e-4
    absolute, logged losses 1e-4 relative, test accuracy equal. Checked by breaking the code, each far
    outside it: the prior's loss divided among the 2 ranks moved the weights by 9e-3; uneven shares left
    unweighted, 1.5e-2 (no prior, no mixing); CutMix within each rank's share, 6.5e-2 (CutMix alone).
    """
    bank = _toy_bank(tmp_path / "bank.safetensors")
    args = [*MINI, "--model", "mynet-small", "--epochs", "3", "batch_size=7", "optim.lr=0.1", "--quiet",
            "data.cutmix=1.0", "data.mix_prob=0.7", "data.policy=trivialaugment", "data.cutout=8",
            "prior.name=adversarial", f"prior.bank={bank}", "prior.kernels_per_step=32", "prior.weight=0.5"]
    _run(_one_process(*args, "--out", str(tmp_path / "one")))
    _run(_torchrun(*args, "--out", str(tmp_path / "two")))
    one, two = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two"))
    assert one["test_acc"] == two["test_acc"]
    assert two["test_loss"] == pytest.approx(one["test_loss"], rel=1e-4)
    wa, wb = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=0, atol=1e-4)
    rows = [(tmp_path / r / "metrics.csv").read_text().splitlines() for r in ("one", "two")]
    assert rows[0][0] == rows[1][0] and "prior/adversarial/0" in rows[0][0] and "d_real/0" in rows[0][0]
    for a, b in zip(rows[0][1:], rows[1][1:]):  # time_s (third column) differs, the rest agree
        va, vb = a.split(","), b.split(",")
        assert va[:2] == vb[:2]
        assert [float(x) for x in vb[3:]] == pytest.approx([float(x) for x in va[3:]], rel=1e-4)
    # The prior's state as rank 0 saved it: the same generator draws and updates, and a discriminator that
    # judges kernels alike. Compared by what it says, not parameter by parameter: Adam turns round-off in a
    # gradient near 0 into a step of about d_lr whatever its size, so parameters with (almost) no effect
    # drift apart -- the conv biases that BatchNorm subtracts again measured 5e-4 apart -- while its scores
    # (BatchNorm on batch statistics, as in training) agreed to 5e-5 of values up to 0.11.
    pa, pb = (load_checkpoint(tmp_path / r / "checkpoint.pt")["prior"] for r in ("one", "two"))
    ea, eb = pa["_extra_state"], pb["_extra_state"]  # a loss term's state beside its modules' tensors
    assert torch.equal(ea["generator"], eb["generator"]) and ea["d_updates"] == eb["d_updates"] == 18
    kernels = normalize_kernels(torch.randn(256, 5, 5, generator=torch.Generator().manual_seed(1)), "unit")
    scores = []
    for state in (pa, pb):
        d = build_discriminator("conv", (1, 5, 5), "batch", False)
        d.load_state_dict(_discriminator_state(state, "0"))
        with torch.no_grad():
            scores.append(d.train()(kernels.unsqueeze(1)))
    untrained = build_discriminator("conv", (1, 5, 5), "batch", False)
    untrained.load_state_dict(_discriminator_state(pa, "0") | {k: v for k, v in untrained.state_dict().items()
                                                           if k.startswith("head")})
    with torch.no_grad():  # a head left as initialised scores far away: the tolerance below can fail
        assert (untrained.train()(kernels.unsqueeze(1)) - scores[0]).abs().max() > 1e-2
    torch.testing.assert_close(scores[1], scores[0], rtol=0, atol=5e-4)


def _wait_for_checkpoint(run: Path, epoch: int, proc: subprocess.Popen, seconds: float = 150) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        ckpt = run / "checkpoint.pt"
        if ckpt.exists():
            try:
                if load_checkpoint(ckpt)["epoch"] >= epoch:
                    return
            except UserError:  # being replaced right now
                pass
        time.sleep(0.02)


def _worker_pids(proc: subprocess.Popen) -> dict[int, int]:
    """torchrun's worker processes by RANK (its direct children, each told its RANK in its environment)."""
    found = {}
    for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = [e for e in env if e.startswith(b"RANK=")]
        if rank:
            found[int(rank[0][5:])] = int(pid)
    return found


@pytest.mark.slow
def test_a_torchrun_job_killed_midway_resumes_to_where_an_uninterrupted_one_ends(tmp_path):
    """The whole job killed (SIGKILL to torchrun and its workers, as a scheduler does) after a checkpoint,
    then `--resume` under torchrun: the same weights, bit for bit, as a job never interrupted (both
    2-process jobs; BatchNorm, crop, flip and cutout on, so the per-rank shares and draws must replay)."""
    args = ["--data", "mini", "--images-per-class", "6", "threads=1", "progress=false", "filter_pictures=false",
            "--model", "simplecnn", "--epochs", "10", "batch_size=10", "data.cutout=8", "--quiet"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    _run(_torchrun(*args, "--out", str(full)))

    proc = subprocess.Popen(_torchrun(*args, "--out", str(killed)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_checkpoint(killed, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the job finished before it could be killed"
    interrupted_at = load_checkpoint(killed / "checkpoint.pt")["epoch"]
    assert 2 <= interrupted_at < 10

    done = _run(_torchrun("--out", str(killed), "--resume", "--quiet"))  # the run's own config.yaml
    assert done.stdout.count("test accuracy") == 1
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (full, killed))
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"] and a["steps"] == b["steps"] == 60
    wa, wb = _weights(full), _weights(killed)
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert len((killed / "metrics.csv").read_text().splitlines()) == 11


def _start_and_wait_for_training(tmp_path: Path, env: dict | None = None) -> tuple[subprocess.Popen, dict[int, int]]:
    run = tmp_path / "run"
    args = ["--data", "mini", "--images-per-class", "10", "threads=1", "progress=false", "filter_pictures=false",
            "--model", "simplecnn", "--epochs", "200", "batch_size=10", "--out", str(run)]
    proc = subprocess.Popen(_torchrun(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})
    _wait_for_checkpoint(run, 1, proc)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    pids = _worker_pids(proc)
    assert sorted(pids) == [0, 1]
    return proc, pids


def test_a_rank_that_dies_ends_the_job_with_an_error_naming_it(tmp_path):
    """Rank 1 killed mid-training (SIGKILL, as the kernel's OOM killer does): torchrun ends the job within
    seconds, exit status not 0, and its summary names rank 1 and the signal."""
    proc, pids = _start_and_wait_for_training(tmp_path)
    killed_at = time.time()
    os.kill(pids[1], signal.SIGKILL)
    output = _output_when_ended(proc)
    assert proc.returncode != 0
    assert time.time() - killed_at < 60
    # torchrun's summary lists each failed process; rank 0 may list as failed itself (it sees the lost peer
    # at once, says so in one line, and exits 2) or as stopped by torchrun, so only rank 1's entry is fixed.
    summary = output.split("Failures:")[1]
    assert "rank      : 1" in summary and f"Signal 9 (SIGKILL) received by PID {pids[1]}" in summary, output[-3000:]
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_a_rank_that_hangs_is_found_by_the_process_group_timeout(tmp_path):
    """Rank 1 stopped (SIGSTOP: alive, silent): rank 0 waits in the gradient all-reduce until the process
    group's timeout (here 4 s), then fails with one line naming itself and the timeout, and the job ends."""
    proc, pids = _start_and_wait_for_training(tmp_path, {distributed.TIMEOUT_ENV: "4"})
    os.kill(pids[1], signal.SIGSTOP)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and _alive(pids[0]):
            time.sleep(0.1)
        assert not _alive(pids[0]), "rank 0 still waits for the stopped rank"
    finally:
        os.kill(pids[1], signal.SIGCONT)  # let torchrun's SIGTERM reach it
    output = _output_when_ended(proc)
    assert proc.returncode != 0
    assert ("error: rank 0: another process of this torchrun job stopped answering (it crashed, was killed, or hung "
            f"past {distributed.TIMEOUT_ENV}=4 s)") in output, output[-3000:]
    # gloo's own words: "Timed out" in the gradient all-reduce, "Application timeout caused pair closure" when
    # the wait ends in DDP's buffer broadcast at the next forward (seen under load)
    assert "timed out" in output.lower() or "timeout caused pair closure" in output.lower()


def _output_when_ended(proc) -> str:
    """The job's output once it ends (at most 60 s; then it is killed with its workers)."""
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return output


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_epoch_sums_of_two_ranks_add_up_floats_and_device_tensors_alike(tmp_path):
    """reduce_epoch in a real 2-process gloo group (torch.multiprocessing, no torchrun): floats and
    one-element tensors (what an on-device loop accumulates) summed over ranks."""
    import torch.multiprocessing as mp

    mp.spawn(_sum_worker, args=(str(tmp_path / "store"),), nprocs=2, join=True)
    assert sorted(p.name for p in tmp_path.glob("rank*.json")) == ["rank0.json", "rank1.json"]
    for path in tmp_path.glob("rank*.json"):
        assert json.loads(path.read_text()) == {"sums": {"train_loss": 7.5, "prior/x": 3.0}, "correct": 3.0,
                                                "seen": 10.0}


def _sum_worker(rank: int, store: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        os.environ.update(RANK=str(rank), WORLD_SIZE="2")
        loss = 2.5 if rank == 0 else torch.tensor(5.0)
        sums, correct, seen = distributed.reduce_epoch({"train_loss": loss, "prior/x": torch.tensor([1.5])},
                                                       rank + 1, 4 + 2 * rank, torch.device("cpu"))
        out = Path(store).parent / f"rank{rank}.json"
        out.write_text(json.dumps({"sums": sums, "correct": correct, "seen": seen}))
    finally:
        dist.destroy_process_group()


def test_rank_zeros_objects_and_errors_reach_every_rank_in_order(tmp_path):
    """share_from_main and run_on_main in a real 2-process gloo group: each rank gets rank 0's values, in the
    order shared, and rank 0's UserError with its words; they go through the group's store, not a collective
    (a collective's Python-made tensor, dropped by a gloo thread after exit, aborted torchrun jobs)."""
    import torch.multiprocessing as mp

    mp.spawn(_share_worker, args=(str(tmp_path / "store"),), nprocs=2, join=True)
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {
            "first": {"test_acc": 0.5}, "second": [1, 2], "error": "rank 0 refused: bad --out", "ran": rank == 0}


def _share_worker(rank: int, store: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        os.environ.update(RANK=str(rank), WORLD_SIZE="2")

        def no_collective(*args, **kwargs):
            raise AssertionError("a collective was started to share an object")

        for name in ("broadcast_object_list", "broadcast", "all_gather_object", "scatter_object_list"):
            setattr(dist, name, no_collective)  # this spawned process's own module; the test's is untouched
        calls = []
        first = distributed.share_from_main({"test_acc": 0.5} if rank == 0 else None)
        second = distributed.share_from_main([1, 2] if rank == 0 else "ignored")

        def refuse():
            calls.append(rank)
            raise UserError("rank 0 refused: bad --out")

        with pytest.raises(UserError) as refused:
            distributed.run_on_main(refuse)
        out = Path(store).parent / f"rank{rank}.json"
        out.write_text(json.dumps({"first": first, "second": second, "error": str(refused.value),
                                   "ran": calls == [rank]}))
    finally:
        dist.destroy_process_group()
