"""Shared fixtures: compose configs like the CLI does, run genrun in-process or as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from genrun.config import register


def pin_xdist_worker() -> None:
    """Under pytest-xdist (pyproject's `-n auto`), worker gwN runs on its own share of the cores this
    process may use. genrun's `num_threads=auto` counts those cores (engine/threads.py), so each
    worker, and every genrun it starts, takes one thread per core it has instead of all of them:
    two all-core torch processes on 2 cores ran 5x slower each than one alone."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    index, count = int(worker.removeprefix("gw")), int(count)
    share = cpus[index::count] if count <= len(cpus) else [cpus[index % len(cpus)]]
    os.sched_setaffinity(0, share)


pin_xdist_worker()
torch.set_num_threads(1)  # tiny models: threads cost more than they give, and CI has 2 cores
register()

# Small, fast settings shared by the tests that train (every key stays overridable).
TINY = [
    "trainer=debug",
    "trainer.batch_size=8",
    "eval=debug",
    "model.generator.width=8",
    "model.discriminator.width=8",
]


@pytest.fixture(autouse=True, scope="session")
def genrun_cache(tmp_path_factory) -> Path:
    """One cache folder per test session (genrun's classifiers train once, never in the user's home);
    set in os.environ so CLI subprocesses use it too."""
    folder = tmp_path_factory.mktemp("genrun-cache")
    os.environ["GENRUN_CACHE"] = str(folder)
    return folder


def compose_config(*overrides: str) -> DictConfig:
    with initialize_config_module("genrun.configs", version_base=None):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def cfg_factory():
    return compose_config


def tiny_overrides(model: str, *extra: str) -> list[str]:
    """TINY, adapted to the model's networks (a VAE has an encoder and a decoder)."""
    nets = ["model.encoder.width=8", "model.decoder.width=8"] if model in ("vae",) else TINY[3:]
    return [f"model={model}", *TINY[:3], *nets, *extra]


def run_cli(*args: str, cwd: Path, entry: str = "genrun", timeout: float = 300, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
    """Run a console script the way a user would (python -m for genrun, the module for the others)."""
    code = {"genrun": "from genrun.cli import main; main()",
            "genrun-sample": "from genrun.cli import sample_main; sample_main()",
            "genrun-eval": "from genrun.cli import eval_main; eval_main()",
            "genrun-report": "from genrun.cli import report_main; report_main()"}[entry]
    full_env = {**os.environ, "GENRUN_DEBUG": "", "HYDRA_FULL_ERROR": "", "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{entry} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
