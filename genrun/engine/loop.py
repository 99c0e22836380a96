"""The training loop: family-agnostic, short enough to read at once.

It has the updater run the family's phases each step and decides when to log, draw samples,
evaluate and checkpoint; it never sees a generator or a discriminator, a loss, an optimizer or
a metric (evaluation is a callable, like checkpointing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from genrun.config import TrainerConfig
from genrun.data.bundle import Batch
from genrun.engine import distributed
from genrun.engine.outputs import RunOutputs
from genrun.engine.progress import ProgressReporter
from genrun.engine.protocol import Family, Noise
from genrun.engine.signals import StopSignals
from genrun.engine.tracker import ScalarTracker
from genrun.engine.updates import Updater


@dataclass
class LoopResult:
    step: int
    seconds: float
    steps_done: int
    scalars: dict[str, float] = field(default_factory=dict)  # the last logged means
    stopped_by: str = ""  # name of the signal that stopped the run early, if any
    exit_code: int = 0
    pass_on: Callable[[], None] = lambda: None  # hands a stop signal on to an earlier handler (submitit)


def fit(
    pipeline: Family,
    next_batch: Callable[[], Batch],
    trainer: TrainerConfig,
    outputs: RunOutputs,
    save_checkpoint: Callable[[int], None],
    preview_inputs: Noise,
    start_step: int = 0,
    updater: Updater | None = None,
    evaluate: Callable[[int], None] | None = None,
) -> LoopResult:
    """Train from `start_step` to `trainer.max_steps`, or until a stop signal arrives; call
    `evaluate(step)` every `trainer.eval_every` steps (on every process)."""
    updater = updater if updater is not None else Updater(pipeline.device)
    tracker = ScalarTracker()
    step, scalars = start_step, {}
    t0 = t_log = time.perf_counter()
    with StopSignals() as stop, ProgressReporter(start_step, trainer.max_steps, outputs.main) as progress:
        while step < trainer.max_steps:
            step += 1
            tracker.add(step, updater.step(pipeline, next_batch, step))
            progress.advance(step)
            # several processes stop together, for the same signal, even when it reached only some of them
            stop.agree(distributed.largest(stop.received or 0, pipeline.device))
            final = step == trainer.max_steps or stop.requested
            if step % trainer.log_every == 0 or final:
                n = tracker.count
                scalars = tracker.flush()  # the only host sync of a step; raises on NaN/inf
                now = time.perf_counter()
                scalars["time/step_ms"] = 1000 * (now - t_log) / max(n, 1)
                t_log = now
                outputs.scalars(step, scalars)
                progress.report(step, scalars)
            if outputs.main and (step % trainer.sample_every == 0 or final):
                for name, picture in pipeline.previews(preview_inputs).items():
                    outputs.samples(step, picture, name)
            if evaluate is not None and trainer.eval_every and step % trainer.eval_every == 0:
                tracker.check()  # never evaluate (nor keep as the best) a diverged model
                t_eval = time.perf_counter()
                evaluate(step)
                t_log += time.perf_counter() - t_eval  # time/step_ms stays the training's own
            if step % trainer.ckpt_every == 0 or final:
                tracker.check()  # never write a checkpoint of a diverged model
                save_checkpoint(step)
            if final:  # the only way out, so a stop signal always gets its checkpoint
                break
    seconds = time.perf_counter() - t0
    return LoopResult(step, seconds, step - start_step, scalars, stop.name, stop.exit_code, stop.pass_on)
