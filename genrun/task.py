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
from genrun.options import EVAL_GROUPS, MAY_CHANGE_ON_RESUME, with_eval_groups
from genrun.paths import process_rank

EVAL_PREFIXES = tuple(f"{g}{sep}" for g in EVAL_GROUPS for sep in ("=", "."))


def resumable(override: str) -> bool:
    """An override a resume accepts: a key of MAY_CHANGE_ON_RESUME (trainer's keys one by one:
    `trainer=debug` would swap the whole group)."""
    key = override.lstrip("+").split("=", 1)[0]
    head = key.split(".", 1)[0]
    return head in MAY_CHANGE_ON_RESUME and ("." in key or head != "trainer")


def resume_config(saved: dict[str, Any], overrides: list[str], resume: str) -> DictConfig:
    """The saved run's config with the command line's `trainer.*` and evaluation overrides applied.

    Model, loss, dataset and optimizer come from the checkpoint: changing them would not
    continue the same run, so any other override is an error. How the run is measured may
    change (`eval.*`, `metrics=[...]`, `features=...`); a run saved before those groups
    existed continues with today's defaults for them.
    """
    foreign = [o for o in overrides if not resumable(o)]
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


ATTEMPTS = {"completed before, skipped": 0, "continued from a checkpoint": 0}  # this process's jobs


def comparable(config: Any) -> Any:
    """What decides whether two attempts are the same run: the resolved config without the keys a
    resume may change (trainer.*, how the run is measured), as `genrun resume=` would allow."""
    plain = OmegaConf.to_container(config, resolve=True, enum_to_str=True) if OmegaConf.is_config(config) else dict(config)
    return {k: v for k, v in plain.items() if k not in MAY_CHANGE_ON_RESUME}


def saved_metrics(run_dir: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def earlier_attempt(cfg: DictConfig, run_dir: Path) -> tuple[str, Any]:
    """What an earlier attempt of this same job left in its folder: ("completed", metrics),
    ("checkpoint", the checkpoint to continue), or ("none", None). This is what makes a sweep
    rerun with the same hydra.sweep.dir, or a SLURM job requeued after pre-emption, pick up where
    it stopped. A folder holding another config's run starts afresh (with a warning)."""
    import logging

    from genrun.run_state import read_checkpoint

    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        return "none", None
    try:
        checkpoint = read_checkpoint(last)
    except GenrunError as exc:
        logging.getLogger("genrun").warning("%s; starting the run afresh", exc)
        return "none", None
    if comparable(checkpoint.get("config", {})) != comparable(cfg):
        logging.getLogger("genrun").warning("%s holds a run of another config; starting afresh", run_dir)
        return "none", None
    metrics = saved_metrics(run_dir)
    if metrics and metrics.get("status") == "completed" and int(checkpoint["step"]) >= int(cfg.trainer.max_steps):
        return "completed", metrics
    return "checkpoint", checkpoint


def value_for_sweeper(value: float) -> float:
    """A failed or diverged job's NaN, as the worst value of the sweeper's direction when it has
    one (Optuna: +inf when minimising, -inf when maximising), so the study records the trial and
    goes on (Optuna refuses NaN, and hydra-optuna-sweeper then stops the whole study)."""
    if math.isfinite(value) or not HydraConfig.initialized():
        return value
    direction = HydraConfig.get().sweeper.get("direction")
    name = str(getattr(direction, "name", direction or "")).lower()
    if name in ("minimize", "maximize"):  # one objective (a list of directions: left as it is)
        return math.inf if name == "minimize" else -math.inf
    return value


def hydra_job(cfg: DictConfig) -> float:
    """Train one Hydra job (a run or one job of a sweep) in its output folder; an earlier
    attempt of the same job in that folder is continued, or skipped when it completed."""
    import logging

    from genrun.paths import find_checkpoint
    from genrun.run_state import read_checkpoint
    from genrun.train import run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    checkpoint = None
    try:
        if cfg.get("resume"):
            checkpoint = read_checkpoint(find_checkpoint(cfg.resume))
            cfg = resume_config(checkpoint["config_raw"], list(hydra_cfg.overrides.task), str(cfg.resume))
            if hydra_cfg.output_subdir:  # record what this resume actually ran with
                OmegaConf.save(cfg, run_dir / hydra_cfg.output_subdir / "config.yaml")
        else:
            found, earlier = earlier_attempt(cfg, run_dir)
            if found == "completed":
                ATTEMPTS["completed before, skipped"] += 1
                logging.getLogger("genrun").info("%s: this run completed before (same config); skipped", run_dir)
                return primary_value(earlier)
            if found == "checkpoint":
                ATTEMPTS["continued from a checkpoint"] += 1
                logging.getLogger("genrun").info("%s: continuing this run from its step %d (same config)",
                                                 run_dir, int(earlier["step"]))
                checkpoint = earlier
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
