"""What a finished run reports: metrics.json (the step, how it ended, speed, memory, and every
number of its evaluation with its floor, direction and protocol) and its TensorBoard hparams."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from genrun.engine.loop import LoopResult
from genrun.evaluation import Evaluation
from genrun.runs import config_settings, group_choices

# the run's own numbers, beside its metrics' (whose directions come from their classes)
RUN_DIRECTIONS = {"time_s": "lower", "steps_per_s": "higher", "peak_rss_mib": "lower", "peak_cuda_mib": "lower"}


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (and CUDA allocations), in MiB."""
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = {"peak_rss_mib": rss_kib / 1024 if sys.platform != "darwin" else rss_kib / 2**20}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def training_numbers(result: LoopResult) -> dict[str, Any]:
    """The step, how the run ended, its speed, its last logged scalars and its peak memory."""
    return {
        "step": result.step,
        "status": f"stopped by {result.stopped_by}" if result.stopped_by else "completed",
        "time_s": round(result.seconds, 3),
        "steps_per_s": round(result.steps_done / max(result.seconds, 1e-9), 3),
        **result.scalars,
        **peak_memory(),
    }


def final_metrics(cfg: DictConfig, result: LoopResult, evaluation: Evaluation, fallback_primary: str) -> dict[str, Any]:
    """metrics.json: the training's numbers, the evaluation's values (flat keys, for sweepers)
    with their floor, directions and protocol, and `primary`, the key a sweeper reads
    (`monitor`, or with `auto` the first key of the first metric that ran, else `fallback_primary`)."""
    metrics = {**training_numbers(result), **evaluation.values}
    monitor = cfg.get("monitor", "auto")
    metrics["primary"] = (evaluation.first_key or fallback_primary) if monitor == "auto" else monitor
    metrics["floor"] = evaluation.floor
    metrics["directions"] = {**{k: v for k, v in RUN_DIRECTIONS.items() if k in metrics}, **evaluation.directions}
    metrics["protocol"] = {**evaluation.protocol, "skipped": evaluation.skipped, "seconds": evaluation.seconds}
    return metrics


def hparams_of(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The run's settings for TensorBoard's HPARAMS tab, named as genrun-report names them: the
    group choices of its .hydra/hydra.yaml and the flat resolved config."""
    return {**group_choices(run_dir), **config_settings(cfg)}
