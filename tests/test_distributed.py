"""Several processes through the real torchrun command (gloo on the CPU): one run folder, the
same weights on every rank, the global batch split between ranks, bit-exact resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genrun.data.bundle import Batches, DataBundle
from genrun.engine.checkpoint import load_checkpoint
from genrun.errors import GenrunError
from tests.conftest import TINY, run_cli
from tests.test_training import assert_bitwise_equal


def average_with_an_unused_parameter(rank: int, world: int, init_file: str, out: str) -> None:
    """Rank 0 uses a and b, rank 1 only a, nobody c; then the engine's gradient averaging."""
    from genrun.engine.updates import average_gradients

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    a, b, c = (torch.nn.Parameter(torch.ones(n)) for n in (3, 2, 1))
    loss = (a * (rank + 1)).sum() + (b.sum() if rank == 0 else 0)
    loss.backward()
    average_gradients([a, b, c])
    torch.save({"a": a.grad, "b": b.grad, "c": c.grad}, Path(out) / f"{rank}.pt")
    torch.distributed.destroy_process_group()


def test_a_parameter_one_rank_leaves_unused_is_averaged_with_zeros(tmp_path):
    """As PyTorch's DDP does: every rank reduces the same layout, the unused side counting as zero
    (unequal buffers made gloo fail, and NCCL may hang or mix gradients); a parameter no rank used
    keeps no gradient."""
    import time

    import torch.multiprocessing as mp

    context = mp.start_processes(average_with_an_unused_parameter, (2, str(tmp_path / "init"), str(tmp_path)),
                                 nprocs=2, join=False, start_method="spawn")
    deadline = time.time() + 120
    try:
        while not context.join(timeout=1):
            assert time.time() < deadline, "the two processes did not finish (a collective hangs)"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    grads = [torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1)]
    for g in grads:
        assert torch.equal(g["a"], torch.full((3,), 1.5))  # (1 + 2) / 2
        assert torch.equal(g["b"], torch.full((2,), 0.5))  # (1 + 0) / 2
        assert g["c"] is None


TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun (torch's launcher) is not on the PATH")

GAN = ["model=gan", "dataset=ring8", *TINY, "trainer.log_every=2"]
DCGAN = [*TINY, "trainer.log_every=2"]


def torchrun(*args: str, cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    scratch = cwd / "scratch"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch), "GENRUN_DEBUG": "", "HYDRA_FULL_ERROR": ""}
    cmd = [TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", "-m", "genrun", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("model", [GAN, DCGAN], ids=["gan", "dcgan"])
def test_two_processes_train_one_run_with_the_same_weights(tmp_path, model):
    torchrun(*model, "trainer.max_steps=4", "trainer.batch_size=8", cwd=tmp_path)
    runs = [p.parent for p in (tmp_path / "outputs").rglob("metrics.json")]
    assert len(runs) == 1  # one run folder, however the ranks' clocks differ
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["weights_in_sync"] is True and metrics["step"] == 4
    assert {p.name for p in tmp_path.iterdir()} == {"outputs", "scratch"}  # rank 1 wrote nothing here
    assert not list((tmp_path / "scratch").glob("genrun-rank*"))  # and removed its scratch folder
    assert load_checkpoint(runs[0] / "checkpoints" / "last.pt")["world_size"] == 2


def test_two_processes_resume_bit_exactly_and_load_in_one(tmp_path):
    # rank 0 evaluates every 2 steps and both ranks write best.pt together (it gathers their RNG states)
    common = [*GAN, "trainer.batch_size=8", "trainer.ckpt_every=100", "trainer.sample_every=100",
              "trainer.eval_every=2", "eval.best_by=fid"]
    torchrun(*common, "trainer.max_steps=6", f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path)
    torchrun(*common, "trainer.max_steps=3", f"hydra.run.dir={tmp_path / 'half'}", cwd=tmp_path)
    torchrun(f"resume={tmp_path / 'half'}", "trainer.max_steps=6", cwd=tmp_path)
    a, b = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt") for d in ("straight", "half"))
    assert a["step"] == b["step"] == 6 and a["best"] == b["best"] and a["best"]["step"] in (2, 4, 6)
    assert_bitwise_equal({k: a[k] for k in ("pipeline", "rng_ranks", "data")},
                         {k: b[k] for k in ("pipeline", "rng_ranks", "data")})
    best = load_checkpoint(tmp_path / "half" / "checkpoints" / "best.pt")
    assert best["step"] == a["best"]["step"] and len(best["rng_ranks"]) == 2
    assert json.loads((tmp_path / "half" / "metrics.json").read_text())["best"]["step"] == best["step"]
    # one process reads what two wrote: samples, and a resume that says it is not bit-exact
    run_cli(f"run={tmp_path / 'half'}", "n=10", f"out={tmp_path / 'p.npy'}", entry="genrun-sample", cwd=tmp_path,
            check=True)
    proc = run_cli(f"resume={tmp_path / 'half'}", "trainer.max_steps=7", cwd=tmp_path, check=True)
    assert "written by 2 process(es) and resumes with 1" in proc.stdout + proc.stderr


def test_the_ranks_slices_make_up_the_global_batch():
    data = DataBundle(train=torch.arange(40.0).view(40, 1), labels=torch.arange(40))
    whole = Batches(data, 8, torch.device("cpu"), seed=3)
    parts = [Batches(data, 8, torch.device("cpu"), seed=3, rank=r, world=4) for r in range(4)]
    for _ in range(7):  # across an epoch boundary (5 batches per epoch)
        batch = whole()
        slices = [p() for p in parts]
        assert torch.equal(torch.cat([s["x"] for s in slices]), batch["x"])
        assert torch.equal(torch.cat([s["y"] for s in slices]), batch["y"])
    with pytest.raises(GenrunError, match=r"trainer.batch_size=10 \(the global batch\) must divide by the number of "
                                          r"processes \(4\)"):
        Batches(data, 10, torch.device("cpu"), seed=0, rank=0, world=4)


def test_a_stop_signal_that_reaches_one_rank_stops_both_at_one_step(tmp_path):
    import signal
    import time

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch), "GENRUN_DEBUG": "", "HYDRA_FULL_ERROR": ""}
    run = tmp_path / "run"
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "genrun", *GAN, "trainer.batch_size=8",
           "trainer.max_steps=100000", "trainer.log_every=1", "trainer.sample_every=100000",
           "trainer.ckpt_every=100000", f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log, deadline = run / "genrun.log", time.time() + 120
    while time.time() < deadline and not (log.exists() and "step 3/" in log.read_text()):
        time.sleep(0.2)
    rank1 = [pid for pid in subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "genrun"], capture_output=True,
                                           text=True).stdout.split()
             if "RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")]
    assert len(rank1) == 1, "rank 1's process"
    os.kill(int(rank1[0]), signal.SIGTERM)  # rank 0 never gets the signal
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the ranks did not stop:\n{out[-3000:]}\n{err[-3000:]}") from None
    assert proc.returncode == 0, out + err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["weights_in_sync"] is True and metrics["step"] >= 3
    assert metrics["status"] == "stopped by SIGTERM"  # rank 0 reports the signal rank 1 received
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == metrics["step"]


def test_a_killed_process_ends_the_others_with_one_line_and_the_resume_command(tmp_path):
    """SIGKILL one of two processes mid-run (as a cluster loses a node): rank 0 says in one line that
    another process ended, from which checkpoint and how to continue; no traceback of its own, and
    metrics.json says how the run ended."""
    import signal
    import time

    scratch, logs, run = tmp_path / "scratch", tmp_path / "logs", tmp_path / "run"
    scratch.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch), "GENRUN_DEBUG": "", "HYDRA_FULL_ERROR": ""}
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", f"--log-dir={logs}", "--redirects=3", "-m", "genrun",
           *GAN, "trainer.batch_size=8", "trainer.max_steps=100000", "trainer.log_every=1",
           "trainer.sample_every=100000", "trainer.ckpt_every=5", f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log, deadline = run / "genrun.log", time.time() + 120
    while time.time() < deadline and not (log.exists() and "step 12/" in log.read_text()):
        time.sleep(0.2)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    rank1 = [pid for pid in children
             if "RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")]
    assert len(rank1) == 1, "rank 1's process"
    os.kill(int(rank1[0]), signal.SIGKILL)
    try:
        proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the run did not end after one of its processes was killed") from None
    assert proc.returncode != 0
    (rank0_err,) = logs.rglob("0/stderr.log")
    err = rank0_err.read_text()
    assert "Traceback" not in err and "Traceback" not in log.read_text()
    errors = [line for line in log.read_text().splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "another process of this run ended" in errors[0], errors
    step = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
    assert step >= 10 and step % 5 == 0
    assert f"the last checkpoint is step {step}: continue with torchrun --nproc_per_node=2 -m genrun resume={run}" \
        in errors[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed: another process of this run ended" and metrics["checkpoint_step"] == step
