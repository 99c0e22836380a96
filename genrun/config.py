"""Structured schemas of the `trainer` and `eval` groups: Hydra rejects a wrong type with a clear message.

Kept free of torch so that `genrun --help` stays fast.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from genrun.paths import process_rank, run_folder_of
from genrun.ranges import Range


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


def within(default: Any, valid: Range) -> Any:
    """A dataclass field with its valid range (read by genrun.schema.check_ranges)."""
    return field(default=default, metadata={"range": valid})


POSITIVE = Range(1, integer=True)


@dataclass
class TrainerConfig:
    """How long and how a run trains; every key can be overridden on resume."""

    max_steps: int = within(4000, POSITIVE)  # generator (outer) steps
    batch_size: int = within(64, POSITIVE)
    n_critic: int = within(1, POSITIVE)  # discriminator updates per generator update
    ema: float = within(0.0, Range(0, 1, high_open=True))  # decay of the sampling nets' weight average (e.g. 0.999); 0 = off
    seed: int = within(0, Range(0, integer=True))
    device: Device = Device.auto
    log_every: int = within(50, POSITIVE)  # scalars are read from the device only at these steps
    sample_every: int = within(500, POSITIVE)
    ckpt_every: int = within(500, POSITIVE)
    keep_last: int = within(2, Range(0, integer=True))  # step_<N>.pt files kept beside last.pt
    sample_n: int | None = within(None, POSITIVE)  # samples per picture; None: 64 images or 1024 2D points
    precision: str = "32"  # 32, bf16 or 16: autocast of every phase's forward pass (16: with loss scaling)
    grad_clip: float = within(0.0, Range(0))  # clip each phase's gradient norm to this (0 = off)
    compile: bool = False  # torch.compile every network (in place)
    sync_batchnorm: bool = False  # several processes: BatchNorm statistics over the global batch (CUDA)
    eval_every: int = within(0, Range(0, integer=True))  # evaluate the metrics every N steps (0: at the end only)
    num_threads: str = "auto"  # CPU threads: auto (cores / jobs running at once, e.g. joblib's n_jobs) or N


class Split(str, Enum):
    train = "train"
    test = "test"


@dataclass
class EvalConfig:
    """The evaluation protocol (genrun.evaluation.Evaluator): sample counts, split, seed."""

    n_fake: int = within(5000, POSITIVE)  # generated samples per evaluation
    n_real: int = within(5000, POSITIVE)  # real examples at most
    real_split: Split = Split.train  # the real examples the samples are compared with
    floor: bool = True  # also score held-out examples as if generated (real vs real)
    seed: int = within(0, Range(0, integer=True))  # of the generated samples
    best_by: str = "auto"  # the metric key that picks checkpoints/best.pt
    n_held_out: int = within(1000, POSITIVE)  # held-out examples a metric of the model reads at most
    iwae_k: int = within(100, POSITIVE)  # importance samples of the IWAE bound (5000: the literature's figure)
    inception_weights: str | None = None  # torch-fidelity's Inception-v3 file; None: the torch hub cache (features=inception)


def run_dir(resume: str | None, fresh: str) -> str:
    """hydra.run.dir: a resumed run continues in its own folder, a new run gets `fresh`."""
    if resume and Path(resume).expanduser().exists():
        return str(run_folder_of(resume))
    return fresh


def hydra_subdir(resume: str | None, stamp: str) -> str:
    """hydra.output_subdir: a resume records its invocation beside, not over, the original."""
    return f".hydra/resume_{stamp}" if resume else ".hydra"


def scratch_overrides() -> list[str]:
    """Under torchrun only rank 0 writes the run folder (the ranks' clocks may even name
    different ones): the others get a scratch folder of their own for Hydra's log, named in
    GENRUN_SCRATCH and removed when they finish."""
    if process_rank() == 0:
        return []
    scratch = Path(tempfile.gettempdir()) / f"genrun-rank{process_rank()}-{os.getpid()}"
    os.environ["GENRUN_SCRATCH"] = str(scratch)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]


def register() -> None:
    """Schemas and resolvers the configs use; call before composing (the CLI and tests do)."""
    ConfigStore.instance().store(group="trainer", name="trainer_schema", node=TrainerConfig)
    ConfigStore.instance().store(group="eval", name="eval_schema", node=EvalConfig)
    OmegaConf.register_new_resolver("genrun_run_dir", run_dir, replace=True)
    OmegaConf.register_new_resolver("genrun_hydra_subdir", hydra_subdir, replace=True)
