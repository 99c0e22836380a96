"""Evaluation during training: the hook the loop calls every `trainer.eval_every` steps, and
the best checkpoint (checkpoints/best.pt) it keeps by the monitored key `eval.best_by`.

The loop only calls `PeriodicEvaluation(step)`. Rank 0 runs the run's Evaluator (the one the
end of the run uses, so the real features are computed once; its metrics of the model read the
validation split when the data has one, so that the test split only reports), writes
`eval/<key>` scalars and compares the monitored value with the best so far; every rank then learns the outcome, since
writing best.pt gathers every rank's RNG state (a collective). The best's key, value, step and
evaluation setup go into every checkpoint, so a resumed run keeps comparing against them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genrun.data.bundle import DataBundle
from genrun.engine import distributed
from genrun.errors import GenrunError
from genrun.evaluation import Evaluation, Evaluator
from genrun.metrics.base import Better

log = logging.getLogger("genrun")


def evaluation_setup(cfg: DictConfig) -> str:
    """Everything that decides the numbers (eval protocol, metrics, features; not best_by), as
    one string: values measured under another setup are not compared with each other."""
    groups = {g: OmegaConf.to_container(cfg.get(g), resolve=True, enum_to_str=True) if cfg.get(g) is not None else None
              for g in ("eval", "metrics", "features")}
    if isinstance(groups["eval"], dict):
        groups["eval"].pop("best_by", None)
    return json.dumps(groups, sort_keys=True)


@dataclass
class Best:
    """The monitored key's best value so far and the step it was reached at."""

    key: str | None = None
    value: float | None = None
    step: int | None = None
    setup: str = ""


class BestTracker:
    """Which evaluation is the best so far, by `best_by` (auto: the first key of the first metric
    that ran); `directions` maps each metric name to its keys' directions (Metric.better)."""

    def __init__(self, best_by: str, directions: Mapping[str, Mapping[str, Better]], setup: str) -> None:
        self.best_by, self.directions, self.setup = best_by, {n: dict(d) for n, d in directions.items()}, setup
        self.way = {key: way for d in self.directions.values() for key, way in d.items()}
        self.best = Best(setup=setup)

    def check(self) -> None:
        """An unknown `eval.best_by` fails at start-up, with the keys of the configured metrics."""
        if self.best_by != "auto" and self.best_by not in self.way:
            valid = ", ".join(["auto", *self.way]) if self.way else "auto (no metric is configured: metrics=[])"
            raise GenrunError(f"eval.best_by={self.best_by} is not a key of the configured metrics; valid: {valid}")

    def key_for(self, evaluation: Evaluation) -> str | None:
        if self.best.key is not None:
            return self.best.key
        return self.best_by if self.best_by != "auto" else evaluation.first_key

    def offer(self, step: int, evaluation: Evaluation) -> bool:
        """Whether `evaluation` beats the best so far (a missing or non-finite value never does)."""
        key = self.key_for(evaluation)
        value = evaluation.values.get(key) if key is not None else None
        if value is None:
            return False
        old = self.best.value
        if old is not None and not (value < old if self.way[key] == "lower" else value > old):
            return False
        self.best = Best(key, float(value), step, self.setup)
        return True

    def state(self) -> dict[str, Any]:
        """The checkpoint's record of the best so far (plain types)."""
        return asdict(self.best)

    def restore(self, saved: Mapping[str, Any] | None) -> None:
        """Continue from a checkpoint's record; one measured under another setup or key is dropped."""
        if not saved or saved.get("value") is None:
            return
        best = Best(**saved)
        if best.setup != self.setup or self.best_by not in ("auto", best.key):
            log.warning("the best so far (%s=%.4g at step %d) was measured under other evaluation settings: "
                        "best.pt is chosen afresh from the next evaluation", best.key, best.value, best.step)
            return
        self.best = best

    def summary(self, split: str) -> dict[str, Any]:
        """metrics.json's `best`: the monitored key, its best value and step (null until one), and the
        held-out split it was chosen on."""
        key = self.best.key or (self.best_by if self.best_by != "auto" else None)
        return {"key": key, "value": self.best.value, "step": self.best.step, "split": split}


def selection_split(data: DataBundle) -> str:
    """The held-out split checkpoints are chosen by: validation when the data has one, else test."""
    return "validation" if data.has("validation") else "test"


class PeriodicEvaluation:
    """The loop's evaluation hook: evaluate (rank 0), log `eval/<key>`, keep best.pt (all ranks)."""

    def __init__(self, evaluator: Evaluator, pipeline: Any, data: DataBundle, outputs: Any,
                 tracker: BestTracker, save_best: Callable[[int], None], start_step: int = 0,
                 max_steps: int = 0) -> None:
        self.evaluator, self.pipeline, self.data, self.outputs = evaluator, pipeline, data, outputs
        self.tracker, self.save_best = tracker, save_best
        self.start_step, self.max_steps, self.started = start_step, max_steps, time.perf_counter()
        self.split = selection_split(data)
        self.last: tuple[int, Evaluation] | None = None  # the latest (step, evaluation) of rank 0

    def __call__(self, step: int) -> None:
        # every rank: under SyncBatchNorm re-estimating the EMA copy's statistics is a collective
        self.pipeline.refresh_ema_statistics()
        if distributed.rank() == 0:
            t0 = time.perf_counter()
            evaluation = self.evaluator(self.pipeline, self.data, self.split, self.expected_training_s(step))
            self.last = (step, evaluation)
            improved = self.tracker.offer(step, evaluation)
            self.outputs.evaluation(step, evaluation.values, time.perf_counter() - t0)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in evaluation.values.items() if v is not None)
            best = self.tracker.best
            log.info("eval at step %d: %s%s", step, shown or "no metric ran",
                     " (new best)" if improved else f" (best {best.key}={best.value:.4g} at step {best.step})"
                     if best.value is not None else "")
        self.tracker.best = Best(**distributed.broadcast_object(asdict(self.tracker.best)))
        if self.tracker.best.step == step:
            self.save_best(step)

    def expected_training_s(self, step: int) -> float:
        """This attempt's whole training time, as its pace so far predicts it."""
        done = max(step - self.start_step, 1)
        return (time.perf_counter() - self.started) / done * max(self.max_steps - self.start_step, done)
