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
              "trainer.eval_every=2"]
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
