"""run(cfg) -> metrics: one training run, start to end, in the order it happens."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from genrun.build import (
    build_data,
    build_evaluator,
    build_pipeline,
    check_ema,
    check_metrics_fit,
    pick_device,
    with_metrics_expanded,
)
from genrun.data.bundle import Batches
from genrun.engine import distributed
from genrun.engine.checkpoint import CheckpointDir, remove_stale_temp_files
from genrun.engine.loop import fit
from genrun.engine.outputs import NoOutputs, RunOutputs
from genrun.engine.rng import seed_everything
from genrun.engine.summary import print_summary
from genrun.engine.threads import device_of_job, set_threads
from genrun.engine.tracker import NonFiniteLoss
from genrun.engine.updates import Updater, compile_failure, prepare_for_speed
from genrun.errors import GenrunError
from genrun.eval_loop import BestTracker, PeriodicEvaluation, evaluation_setup
from genrun.results import final_metrics, hparams_of
from genrun.run_state import (
    checkpoint_state,
    preview_inputs,
    restore,
    split_for_processes,
    warn_if_schedule_ends_early,
    weights_in_sync,
)
from genrun.runs import LOG_START
from genrun.schema import check_ranges

log = logging.getLogger("genrun")


def run(cfg: DictConfig, run_dir: Path, checkpoint: dict | None = None) -> dict[str, Any]:
    """Train the run described by `cfg` in `run_dir` (continuing `checkpoint` if given)."""
    composed, cfg = cfg, with_metrics_expanded(cfg)  # checkpoints name every metric the run measures
    check_ranges(cfg)
    trainer = cfg.trainer
    threads = set_threads(trainer.get("num_threads", "auto"))
    device = join_processes(trainer)
    main = distributed.rank() == 0
    updater = Updater(device, trainer.precision, trainer.grad_clip)
    seed_everything(int(trainer.seed))
    data, pipeline, evaluator = build_data(cfg), build_pipeline(cfg, device), build_evaluator(cfg, device)
    check_ema(cfg, pipeline)
    check_metrics_fit(cfg, pipeline, evaluator)
    tracker = BestTracker(str(cfg.eval.best_by), {n: m.better for n, m in evaluator.metrics.items()},
                          evaluation_setup(cfg))
    if int(trainer.eval_every) > 0:
        tracker.check()
    split_for_processes(pipeline, trainer)
    prepare_for_speed(pipeline, bool(trainer.compile))
    workers = min(int(cfg.dataset.get("num_workers", 0)), threads)  # parallel jobs share the cores
    batches = Batches(data, int(trainer.batch_size), device, int(trainer.seed), workers,
                      distributed.rank(), distributed.world_size())
    start, noise = 0, None
    if checkpoint is not None:
        start, noise = restore(checkpoint, pipeline, updater, batches)
        tracker.restore(checkpoint.get("best"))
        warn_if_schedule_ends_early(checkpoint, pipeline, int(trainer.max_steps))
    noise = noise if noise is not None else preview_inputs(pipeline, data, trainer)
    if main:
        remove_stale_temp_files(run_dir)  # metrics.json temp files of killed runs
        log.info("%s%s (device %s, %d process(es), %s, start step %d)", LOG_START, run_dir, device,
                 distributed.world_size(), type(pipeline).__name__, start)
    checkpoints = CheckpointDir(run_dir / "checkpoints", int(trainer.keep_last), clean=main)
    outputs = RunOutputs(run_dir, start, data.train[:5000] if data.modes is not None else None) if main else NoOutputs()
    saved = {"step": start if checkpoint is not None else None}

    def save(step: int, best: bool = False) -> None:
        state = checkpoint_state(step, cfg, pipeline, updater, batches, noise, tracker.state())
        if main and best:
            checkpoints.save_best(state)
        elif main:
            checkpoints.save(state, step)
            saved["step"] = step

    periodic = PeriodicEvaluation(evaluator, pipeline, data, outputs, tracker, lambda step: save(step, best=True),
                                  start, int(trainer.max_steps))
    with failures_in_one_line(outputs, run_dir, lambda: saved["step"]):
        result = fit(pipeline, batches, trainer, outputs, save, noise, start, updater, periodic)
        in_sync = weights_in_sync(pipeline)
        metrics = {}
        if main:
            same_step = periodic.last[1] if periodic.last and periodic.last[0] == result.step else None
            reuse = same_step if same_step is not None and periodic.split == "test" else None
            evaluation = reuse or evaluator(pipeline, data, "test", result.seconds)
            metrics = final_metrics(cfg, result, evaluation, pipeline.primary_metric)
            if int(trainer.eval_every) > 0:
                metrics["best"] = tracker.summary(periodic.split)
            if distributed.active():
                metrics.update({"world_size": distributed.world_size(), "weights_in_sync": in_sync})
            metrics["num_threads"] = threads
        outputs.metrics(metrics)
        outputs.hparams(hparams_of(composed, run_dir), metrics)  # as genrun-report reads .hydra/config.yaml
    outputs.close()
    if main:
        print_summary(run_dir, metrics)
    result.pass_on()  # e.g. submitit requeues the job now that its checkpoint is written
    if result.exit_code:
        raise SystemExit(result.exit_code)
    return metrics


def join_processes(trainer: DictConfig) -> torch.device:
    """This process's device; under torchrun (or srun) it joins the run's process group first."""
    device = device_of_job(distributed.local_device(pick_device(trainer.device)))
    distributed.init_from_env(device.type)
    return device


@contextlib.contextmanager
def failures_in_one_line(outputs: RunOutputs | NoOutputs, run_dir: Path,
                         last_checkpoint: Callable[[], int | None]) -> Iterator[None]:
    """A training that fails ends with one line saying why and what is left to continue from;
    the outputs are closed either way (their own error never hides the first one)."""
    try:
        yield
    except NonFiniteLoss as exc:
        outputs.close_quietly()
        step = last_checkpoint()
        last = f"checkpoints/last.pt, step {step}, is the last good checkpoint" if step else "no checkpoint was written"
        raise GenrunError(f"training diverged: {exc}; stopped ({last})") from exc
    except distributed.ProcessGroupLost as exc:
        step, world = last_checkpoint(), distributed.world_size()
        outputs.metrics({"status": "failed: another process of this run ended", "checkpoint_step": step})
        outputs.close_quietly()
        resume = (f"the last checkpoint is step {step}: continue with torchrun --nproc_per_node={world} -m genrun "
                  f"resume={run_dir}" if step else "no checkpoint was written")
        raise GenrunError(f"{exc}; {resume}") from exc
    except BaseException as exc:
        outputs.close_quietly()  # the first error is the one to report
        failure = compile_failure(exc)
        if failure is not None:
            raise failure from exc
        raise

