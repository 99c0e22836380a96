"""What one Hydra job does: resolve a resume, run, and return the sweep's number."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from genrun.config import TrainerConfig
from genrun.errors import GenrunError
from genrun.options import EVAL_GROUPS, with_eval_groups
from genrun.paths import process_rank

EVAL_PREFIXES = tuple(f"{g}{sep}" for g in EVAL_GROUPS for sep in ("=", "."))
RESUMABLE_PREFIXES = ("trainer.", "resume=", "monitor=", *EVAL_PREFIXES)


def resume_config(saved: dict[str, Any], overrides: list[str], resume: str) -> DictConfig:
    """The saved run's config with the command line's `trainer.*` and evaluation overrides applied.

    Model, loss, dataset and optimizer come from the checkpoint: changing them would not
    continue the same run, so any other override is an error. How the run is measured may
    change (`eval.*`, `metrics=[...]`, `features=...`); a run saved before those groups
    existed continues with today's defaults for them.
    """
    foreign = [o for o in overrides if not o.lstrip("+").startswith(RESUMABLE_PREFIXES)]
    if foreign:
        raise GenrunError(
            f"resume continues the saved run, so only trainer.*, eval.*, metrics and features may change; "
            f"got {foreign[0]!r} (model, loss, dataset and optimizer come from the checkpoint)"
        )
    evals = [o.lstrip("+") for o in overrides if o.lstrip("+").startswith(EVAL_PREFIXES)]
    choices = dict(o.split("=", 1) for o in evals if o.split("=", 1)[0] in EVAL_GROUPS)
    dotted = [o for o in evals if o.split("=", 1)[0] not in EVAL_GROUPS]
    cfg = with_eval_groups(OmegaConf.create(saved), choices, dotted)
    trainer_overrides = [o.lstrip("+")[len("trainer."):] for o in overrides if o.lstrip("+").startswith("trainer.")]
    try:
        trainer = OmegaConf.merge(OmegaConf.structured(TrainerConfig), cfg.trainer,
                                  OmegaConf.from_dotlist(trainer_overrides))
    except OmegaConfBaseException as exc:
        raise GenrunError(f"bad trainer override on resume: {str(exc).splitlines()[0]}") from exc
    cfg.trainer = trainer
    cfg.resume = resume
    monitor = [o.split("=", 1)[1] for o in overrides if o.startswith("monitor=")]
    if monitor:
        cfg.monitor = monitor[-1]
    return cfg


def primary_value(metrics: dict[str, Any]) -> float:
    """The float a sweeper optimises: metrics[metrics['primary']], NaN when missing."""
    value = metrics.get(metrics.get("primary", ""))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def hydra_job(cfg: DictConfig) -> float:
    """Train one Hydra job (a run or one job of a sweep) in its output folder."""
    from genrun.engine.checkpoint import load_checkpoint
    from genrun.paths import find_checkpoint
    from genrun.train import run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    checkpoint = None
    try:
        if cfg.get("resume"):
            checkpoint = load_checkpoint(find_checkpoint(cfg.resume))
            cfg = resume_config(checkpoint["config_raw"], list(hydra_cfg.overrides.task), str(cfg.resume))
            if hydra_cfg.output_subdir:  # record what this resume actually ran with
                OmegaConf.save(cfg, run_dir / hydra_cfg.output_subdir / "config.yaml")
        return primary_value(run(cfg, run_dir, checkpoint))
    finally:
        leave_process_group(run_dir)


def leave_process_group(run_dir: Path) -> None:
    """Under torchrun: leave the process group; a rank other than 0 removes its scratch folder."""
    import os
    import shutil

    from genrun.engine import distributed

    distributed.shutdown()
    scratch = os.environ.get("GENRUN_SCRATCH")
    if process_rank() > 0 and scratch and Path(scratch) == run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
