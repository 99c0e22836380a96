"""genrun as a user drives it: run folders, resume, sweeps, sampling, signals and bad input."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY, run_cli

FAST = [*TINY, "trainer.max_steps=4"]


def read_scalars(tb: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny DCGAN run on digits, shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli(*FAST, f"hydra.run.dir={folder}", cwd=folder.parent, check=True)
    assert "genrun summary" in proc.stdout
    return folder


def test_run_folder_holds_what_the_contract_says(trained_run):
    f = trained_run
    assert (f / ".hydra" / "config.yaml").is_file()
    assert {p.name for p in (f / "checkpoints").iterdir()} == {"last.pt", "step_3.pt", "step_4.pt"}
    assert sorted(p.name for p in (f / "samples").iterdir()) == [f"step_{i}.png" for i in range(1, 5)]
    metrics = json.loads((f / "metrics.json").read_text())
    assert metrics["step"] == 4 and metrics["status"] == "completed"
    assert {"loss/d", "loss/g", "peak_rss_mib"} <= set(metrics)
    log = (f / "genrun.log").read_text()
    assert "step 4/4" in log and log.count("step 4/4 |") == 1
    assert read_scalars(f / "tb", "loss/d") == [1, 2, 3, 4]


def test_resume_continues_in_place_without_duplicate_points(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    original_config = (run / ".hydra" / "config.yaml").read_text()
    proc = run_cli(f"resume={run}", "trainer.max_steps=7", cwd=tmp_path, check=True)
    assert "start step 4" in proc.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 7
    assert read_scalars(run / "tb", "loss/g") == list(range(1, 8))
    assert (run / ".hydra" / "config.yaml").read_text() == original_config
    (resumed_cfg,) = (run / ".hydra").glob("resume_*/config.yaml")
    assert "max_steps: 7" in resumed_cfg.read_text()
    assert not (tmp_path / "outputs").exists()


def test_resume_refuses_to_change_the_model(trained_run, tmp_path):
    proc = run_cli(f"resume={trained_run}", "model=vae", cwd=tmp_path)
    assert proc.returncode != 0
    assert "only trainer.*, eval.*, metrics and features may change" in proc.stderr and "model=vae" in proc.stderr


@pytest.mark.parametrize("out,shape", [("grid.png", None), ("x.pt", (9, 1, 16, 16)), ("x.npy", (9, 1, 16, 16))])
def test_genrun_sample_writes_pictures_and_tensors(trained_run, tmp_path, out, shape):
    target = tmp_path / out
    run_cli(f"run={trained_run}", "n=9", f"out={target}", "seed=3", entry="genrun-sample", cwd=tmp_path, check=True)
    assert target.is_file()
    if out.endswith(".pt"):
        x = torch.load(target, weights_only=True)
        assert tuple(x.shape) == shape and x.min() >= -1 and x.max() <= 1
    elif out.endswith(".npy"):
        assert np.load(target).shape == shape


def test_genrun_sample_of_a_2d_run_is_an_n_by_2_array(tmp_path):
    run = tmp_path / "toy"
    run_cli("model=gan", "dataset=ring8", *FAST, f"hydra.run.dir={run}", cwd=tmp_path, check=True)
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"modes", "hq", "kl_to_uniform"} <= set(metrics) and metrics["primary"] == "kl_to_uniform"
    run_cli(f"run={run / 'checkpoints' / 'last.pt'}", "n=100", f"out={tmp_path / 'p.npy'}",
            entry="genrun-sample", cwd=tmp_path, check=True)
    assert np.load(tmp_path / "p.npy").shape == (100, 2)


def test_multirun_isolates_a_failing_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *FAST, "trainer.batch_size=8,0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "1 job(s) failed" in proc.stderr and "trainer.batch_size=0" in proc.stderr
    assert json.loads((sweep / "0" / "metrics.json").read_text())["step"] == 4
    assert not (sweep / "1" / "metrics.json").exists()
    assert "Traceback" not in proc.stdout + proc.stderr


def test_multirun_runs_every_job_in_its_own_folder(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli("-m", *FAST, "loss=gan,nsgan", f"hydra.sweep.dir={sweep}", cwd=tmp_path, check=True)
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["step"] == 4
        assert (sweep / job / "checkpoints" / "last.pt").is_file()


BAD_INPUT = [
    (["model=doesnotexist"], r"Could not find 'model/doesnotexist'"),
    (["loss=nope"], r"Could not find 'loss/nope'"),
    (["trainer.nope=1"], r"Key 'nope' not in 'TrainerConfig'"),
    (["trainer.max_steps=abc"], r"Value 'abc' of type 'str' could not be converted to Integer"),
    (["trainer.batch_size=0"], r"trainer.batch_size=0: must be a positive integer"),
    (["trainer.max_steps=-5"], r"trainer.max_steps=-5: must be a positive integer"),
    (["trainer.device=tpu"], r"Invalid value 'tpu', expected one of \[auto, cpu, cuda, mps\]"),
    (["model=vae", "loss=wgan_gp"], r"model=vae does not train with loss=wgan_gp .*valid losses for vae: elbo"),
    (["dataset=image_folder", "dataset.root=/no/such/folder"], r"dataset.root='/no/such/folder' is not a folder"),
    (["dataset=mnist", "dataset.root=EMPTY"], r"no usable data under dataset.root=.*set dataset.download=true"),
    (["resume=/no/such/run"], r"'/no/such/run' does not exist"),
    (["dataset.image_size=24"], r"image_size=24: conv nets need 4 \* 2\^k pixels"),
    (["model=vae", "trainer.ema=0.99"], r"trainer.ema=0.99: model=vae keeps no EMA copy"),
    # every numeric key has a declared range (genrun/schema.py), checked before any work
    (["trainer.max_steps=-1"], r"trainer.max_steps=-1: must be a positive integer"),
    (["model.z_dim=0"], r"model.z_dim=0: must be a positive integer \(>= 1\)"),
    (["model=gan", "model.generator.width=0"], r"model.generator.width=0: must be a positive integer"),
    (["scheduler=step", "scheduler.step_size=0"], r"scheduler.step_size=0: must be a positive integer"),
    (["optimizer.lr=-1e-4"], r"optimizer.lr=-0.0001: must be a finite number >= 0"),
    (["loss=wgan_gp", "loss.lambda_gp=nan"], r"loss.lambda_gp=nan: must be a finite number >= 0"),
    (["model.generator.width=wide"], r"model.generator.width='wide': must be a positive integer"),
    (["model=gan", "dataset=ring8", "dataset.source.size=0"], r"dataset.source.size=0: must be a positive integer"),
    (["model=mine", "dataset=gaussians_corr", "trainer.ema=1.5"], r"trainer.ema=1.5: must be a finite number in \[0, 1\)"),
    (["dataset.binarize=sometimes"], r"dataset.binarize='sometimes': valid: none, static, dynamic"),
    (["model=vae", "model.likelihood=poisson"], r"model.likelihood='poisson': valid: auto, bernoulli, continuous_bernoulli"),
    (["model=gan", "dataset=ring8", "+dataset.binarize=static"], r"dataset.binarize=static needs images"),
    (["hydra.run.dir=AFILE/run"], r"cannot create the folder hydra.run.dir=.*afile/run: Not a directory"),
]
if not torch.cuda.is_available():
    BAD_INPUT.append((["trainer.device=cuda"], r"trainer.device=cuda but no cuda device is available"))


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    args = [a.replace("EMPTY", str(tmp_path / "empty")).replace("AFILE", str(tmp_path / "afile")) for a in args]
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("a file where a folder would go")
    run_dir = [] if any(a.startswith("hydra.run.dir=") for a in args) else [f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run_cli(*args, "trainer=debug", "eval=debug", *run_dir, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert __import__("re").search(message, output), output
    assert "Traceback" not in output


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", ["truncated", "foreign", "other_model"])
def test_bad_checkpoints_are_refused_and_left_untouched(trained_run, tmp_path, damage):
    bad = tmp_path / "bad.pt"
    data = (trained_run / "checkpoints" / "last.pt").read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, bad)
    else:
        ckpt = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)
        ckpt["pipeline"]["nets"].pop("discriminator")
        torch.save(ckpt, bad)
    before = digest(bad)
    for proc in (run_cli(f"resume={bad}", cwd=tmp_path),
                 run_cli(f"run={bad}", entry="genrun-sample", cwd=tmp_path)):
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Traceback" not in output
        assert "checkpoint" in output
    assert digest(bad) == before


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 0), (signal.SIGINT, 130), (signal.SIGUSR1, 0)])
def test_signals_checkpoint_at_the_next_step_and_exit_cleanly(tmp_path, sig, code):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "genrun", *TINY, "trainer.max_steps=100000", "trainer.sample_every=100000",
           "trainer.ckpt_every=100000", f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run / "genrun.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "step 3/" in log.read_text()):
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == f"stopped by {sig.name}"
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == metrics["step"] >= 3
    assert "Traceback" not in out + err
