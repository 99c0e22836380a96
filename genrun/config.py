"""Structured schema of the `trainer` group: Hydra rejects a wrong type with a clear message.

Kept free of torch so that `genrun --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from genrun.errors import GenrunError
from genrun.paths import run_folder_of


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


@dataclass
class TrainerConfig:
    """How long and how a run trains; every key can be overridden on resume."""

    max_steps: int = 4000  # generator (outer) steps
    batch_size: int = 64
    n_critic: int = 1  # discriminator updates per generator update
    ema: float = 0.0  # decay of the sampling nets' weight average (e.g. 0.999); 0 = off
    seed: int = 0
    device: Device = Device.auto
    log_every: int = 50  # scalars are read from the device only at these steps
    sample_every: int = 500
    ckpt_every: int = 500
    keep_last: int = 2  # step_<N>.pt files kept beside last.pt
    sample_n: int | None = None  # samples per picture; None: 64 images or 1024 2D points


POSITIVE_KEYS = ("max_steps", "batch_size", "n_critic", "log_every", "sample_every", "ckpt_every", "sample_n")


def run_dir(resume: str | None, fresh: str) -> str:
    """hydra.run.dir: a resumed run continues in its own folder, a new run gets `fresh`."""
    if resume and Path(resume).expanduser().exists():
        return str(run_folder_of(resume))
    return fresh


def hydra_subdir(resume: str | None, stamp: str) -> str:
    """hydra.output_subdir: a resume records its invocation beside, not over, the original."""
    return f".hydra/resume_{stamp}" if resume else ".hydra"


def register() -> None:
    """Schemas and resolvers the configs use; call before composing (the CLI and tests do)."""
    ConfigStore.instance().store(group="trainer", name="trainer_schema", node=TrainerConfig)
    OmegaConf.register_new_resolver("genrun_run_dir", run_dir, replace=True)
    OmegaConf.register_new_resolver("genrun_hydra_subdir", hydra_subdir, replace=True)


def validate_trainer(trainer: DictConfig) -> None:
    """Reject sizes a type check cannot catch (zero or negative), naming the key."""
    for f in fields(TrainerConfig):
        value = trainer[f.name]
        if f.name in POSITIVE_KEYS and value is not None and value < 1:
            raise GenrunError(f"trainer.{f.name}={value}: must be a positive integer (>= 1)")
    if not 0.0 <= trainer.ema < 1.0:
        raise GenrunError(f"trainer.ema={trainer.ema}: the EMA decay must be in [0, 1) (0 = off, e.g. 0.999)")
    if trainer.keep_last < 0:
        raise GenrunError(f"trainer.keep_last={trainer.keep_last}: must be >= 0")
