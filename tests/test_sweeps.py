"""Sweeps that survive: rerunning a sweep continues it, a pre-empted SLURM (submitit) job is
requeued and continues from its own folder, and srun's environment forms the process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genrun.engine.signals import StopSignals
from genrun.paths import adopt_slurm_environment, first_host
from tests.conftest import run_cli

RING = ["model=gan", "dataset=ring8", "eval=debug", "model.generator.width=16", "model.discriminator.width=16",
        "trainer.log_every=50", "trainer.sample_every=100000", "trainer.ckpt_every=20"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    return {f"{net}.{k}": v for net, sd in state["pipeline"]["nets"].items() for k, v in sd.items()}


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def genrun_process(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "GENRUN_DEBUG": "", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", "from genrun.cli import main; main()", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 120.0) -> None:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.mark.trains
def test_a_sweep_run_again_skips_finished_jobs_and_continues_the_killed_one(tmp_path):
    sweep, straight = tmp_path / "sweep", tmp_path / "straight"
    args = ["-m", *RING, "trainer.max_steps=200", "trainer.seed=0,1,2"]
    run_cli(*args, f"hydra.sweep.dir={straight}", cwd=tmp_path, check=True)
    proc = genrun_process(*args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    wait_for(lambda: (sweep / "1" / "checkpoints" / "step_60.pt").exists())
    proc.kill()  # SIGKILL in the second job: no checkpoint at the stop, no metrics.json
    proc.wait()
    assert not (sweep / "1" / "metrics.json").exists() and not (sweep / "2").exists()
    rerun = run_cli(*args, f"hydra.sweep.dir={sweep}", cwd=tmp_path, check=True)
    assert "1 completed before, skipped, 1 continued from a checkpoint" in rerun.stderr
    assert "continuing this run from its step" in (sweep / "1" / "genrun.log").read_text()
    for job in ("0", "1", "2"):
        assert same_weights(sweep / job, straight / job), job
    again = run_cli(*args, f"hydra.sweep.dir={sweep}", cwd=tmp_path, check=True)
    assert "3 completed before, skipped" in again.stderr


@pytest.mark.trains
def test_a_folder_of_another_config_is_not_continued(tmp_path):
    run_cli(*RING, "trainer.max_steps=40", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path, check=True)
    other = run_cli(*RING, "trainer.max_steps=40", "model.z_dim=3", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path,
                    check=True)
    assert "holds a run of another config; starting afresh" in other.stdout + other.stderr
    assert torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)["config"]["model"]["z_dim"] == 3


@pytest.mark.trains
@pytest.mark.slow
def test_a_preempted_submitit_job_is_requeued_and_ends_as_an_uninterrupted_run(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the slurm extra (hydra-submitit-launcher)")
    sweep, straight = tmp_path / "sweep", tmp_path / "straight"
    args = [*RING, "trainer.max_steps=400"]
    run_cli(*args, f"hydra.run.dir={straight}", cwd=tmp_path, check=True)
    proc = genrun_process("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", *args,
                          f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    wait_for(lambda: (sweep / "0" / "checkpoints" / "step_60.pt").exists())
    job = subprocess.run(["pgrep", "-f", f"submitit.core._submit {sweep}"], capture_output=True, text=True)
    for pid in job.stdout.split():
        os.kill(int(pid), signal.SIGUSR2)  # what SLURM sends before the time limit (submitit's default)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    log = (sweep / "0" / "genrun.log").read_text()
    assert "status=stopped by SIGUSR2" in log and "continuing this run from its step" in log
    assert "status=completed" in log
    assert same_weights(sweep / "0", straight)


def test_srun_variables_become_torchrun_ones_and_torchrun_wins():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "4242",
           "SLURM_JOB_NODELIST": "gpu[007-009,012],cpu1"}
    adopt_slurm_environment(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_ADDR"], env["MASTER_PORT"]) == \
        ("3", "8", "1", "gpu007", "29742")
    torchrun = {"RANK": "0", "WORLD_SIZE": "2", "SLURM_PROCID": "5", "SLURM_NTASKS": "8"}
    adopt_slurm_environment(torchrun)
    assert torchrun["RANK"] == "0" and torchrun["WORLD_SIZE"] == "2"
    alone = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    adopt_slurm_environment(alone)
    assert "RANK" not in alone
    assert first_host("node12") == "node12" and first_host("a[1-3],b2") == "a1" and first_host("x[05]") == "x05"


def test_a_stop_signal_is_passed_on_to_the_handler_genrun_replaced():
    seen = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
    try:
        with StopSignals() as stop:
            signal.raise_signal(signal.SIGUSR2)
            assert stop.received == signal.SIGUSR2 and not stop.requested  # acted on once the ranks agree
            stop.agree(stop.received)
            assert stop.requested and seen == []  # genrun's handler first: checkpoint, then stop
        stop.pass_on()
        assert seen == [signal.SIGUSR2]
        with StopSignals() as stop:
            signal.raise_signal(signal.SIGINT)
            stop.agree(stop.received)
        stop.pass_on()  # Python's own SIGINT handler would raise KeyboardInterrupt: not passed on
    finally:
        signal.signal(signal.SIGUSR2, before)


@pytest.mark.trains
def test_an_optuna_study_of_three_trials_on_ring8_finds_its_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the optuna extra (hydra-optuna-sweeper)")
    study = tmp_path / "study"
    storage = f"sqlite:///{tmp_path / 'ring8.db'}"
    args = ["-m", "hparams_search=ring8_gan", "hydra.sweeper.n_trials=3", "eval=debug",
            "trainer.sample_every=1000", f"hydra.sweeper.storage={storage}"]
    # 400 steps: at 60 no trial's samples reach a mode yet, and KL to uniform is undefined (None)
    run_cli(*args, "trainer.max_steps=400", f"hydra.sweep.dir={study}", cwd=tmp_path, check=True)
    import yaml

    result = yaml.safe_load((study / "optimization_results.yaml").read_text())
    assert set(result["best_params"]) == {"optimizer.lr", "trainer.n_critic", "model.generator.width"}
    kl = [json_of(study / str(i)).get("kl_to_uniform") for i in range(3)]
    assert any(v is not None for v in kl), kl
    assert result["best_value"] == pytest.approx(min(v for v in kl if v is not None))
    run_cli(*args, "trainer.max_steps=20", f"hydra.sweep.dir={tmp_path / 'more'}", cwd=tmp_path, check=True)  # continues the study
    import optuna

    assert len(optuna.load_study(study_name="ring8_gan", storage=storage).trials) == 6


def json_of(run: Path) -> dict:
    import json

    return json.loads((run / "metrics.json").read_text())


@pytest.mark.trains
def test_a_failing_trial_does_not_stop_the_study(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the optuna extra (hydra-optuna-sweeper)")
    conf = tmp_path / "conf" / "hparams_search"
    conf.mkdir(parents=True)
    (conf / "failing.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: optuna\n  - override /hydra/sweeper/sampler: grid\n"
        "hydra:\n  sweeper:\n    direction: minimize\n    n_trials: 2\n    params:\n"
        "      trainer.batch_size: choice(0, 16)\n")
    proc = run_cli("-m", "--config-dir", str(tmp_path / "conf"), "hparams_search=failing", "model=gan", "dataset=ring8",
                   "trainer.max_steps=20", "eval=debug", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 1 and "1 job(s) failed" in proc.stderr  # reported, after the study ended
    import yaml

    result = yaml.safe_load((tmp_path / "s" / "optimization_results.yaml").read_text())
    assert result["best_params"] == {"trainer.batch_size": 16}


@pytest.mark.trains
def test_joblib_jobs_share_the_cores(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs the joblib extra (hydra-joblib-launcher)")
    from genrun.engine.threads import cores

    sweep = tmp_path / "sweep"
    run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *RING, "trainer.max_steps=20",
            "trainer.num_threads=auto", "trainer.seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path, check=True)
    for job in ("0", "1"):
        assert json_of(sweep / job)["num_threads"] == max(1, cores() // 2)
    run_cli(*RING, "trainer.max_steps=5", "trainer.num_threads=auto", f"hydra.run.dir={tmp_path / 'alone'}",
            cwd=tmp_path, check=True)
    assert json_of(tmp_path / "alone")["num_threads"] == cores()


def test_num_threads_takes_auto_or_a_positive_integer():
    from genrun.engine.threads import thread_count
    from genrun.errors import GenrunError

    assert thread_count("3") == 3 and thread_count(2) == 2 and thread_count("auto") >= 1
    for bad in ("0", "-1", "many"):
        with pytest.raises(GenrunError, match=f"trainer.num_threads='{bad}': valid: auto"):
            thread_count(bad)
