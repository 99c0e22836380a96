"""One evaluator for the end of a run, evaluation during training and `genrun-eval`.

It draws the generated samples from its own seeded generator inside a forked RNG (training
continues bit-exactly whether or not it evaluated), computes the real examples' features
once, runs the configured metrics (of samples, and of the model on a held-out split), their
floor (for metrics of samples, the real-vs-real one: held-out examples in place of generated
ones, the best a perfect model could score with these sample counts; for metrics of the model,
a reference of their own, such as a probe on raw pixels), and returns every number with its
direction and the protocol that produced it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.metrics.base import (
    CHUNK,
    Better,
    EvalContext,
    FeatureSpace,
    Metric,
    in_chunks,
    logits_of,
)
from genrun.ranges import PositiveInt, Seed

log = logging.getLogger("genrun")


@dataclass
class Evaluation:
    """The numbers of one evaluation (flat keys), their real-vs-real floor and their protocol."""

    values: dict[str, float] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    directions: dict[str, Better] = field(default_factory=dict)  # each key's better way: lower or higher
    first_key: str | None = None  # the first key of the first metric that ran (what `auto` monitors)
    protocol: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # metric name -> why it did not run
    seconds: dict[str, float] = field(default_factory=dict)  # metric name -> wall time


def forked_rng(device: torch.device):
    """torch's RNG state saved on entry and restored on exit (CPU, and the device's own)."""
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices, device_type=device.type if device.type != "cpu" else "cuda")


def draw_samples(pipeline: Any, n: int, seed: int, data: DataBundle | None = None, split: str = "test") -> Tensor:
    """n samples of the model (in chunks) from a generator seeded with `seed`, on the CPU. A family
    that translates inputs (`translate(batch)`: genrun.pipelines.translation) gives its outputs for
    the first n examples of `split` instead (its samples: outputs of held-out inputs)."""
    rng = torch.Generator(pipeline.device).manual_seed(seed)
    with forked_rng(pipeline.device):
        if data is not None and callable(getattr(pipeline, "translate", None)):
            return in_chunks(lambda b: pipeline.translate({k: v.to(pipeline.device) for k, v in b.items()}),
                             data.examples(n, split))
        return torch.cat([pipeline.sample(min(CHUNK, n - i), rng).detach().float().cpu() for i in range(0, n, CHUNK)])


class Evaluator:
    """Runs `metrics` in `features` on `n_fake` samples against `n_real` examples of `real_split`."""

    def __init__(self, metrics: Mapping[str, Metric], features: Any = None, n_fake: PositiveInt = 5000,
                 n_real: PositiveInt = 5000, real_split: str = "train", floor: bool = True, seed: Seed = 0,
                 value_range: tuple[float, float] | None = None, device: torch.device | str = "cpu") -> None:
        self.metrics, self.features = dict(metrics), features
        self.n_fake, self.n_real, self.real_split, self.floor, self.seed = n_fake, n_real, real_split, floor, seed
        self.value_range = tuple(value_range) if value_range is not None else None
        self.device = torch.device(device)
        self.space: FeatureSpace | None = None
        self._data_id: int | None = None
        self._real: Tensor | None = None
        self._real_features: Tensor | None = None
        self._real_logits: Tensor | None = None
        self._floors: dict[str, dict[str, float | None]] = {}  # by held-out split, computed once per dataset

    def better(self) -> dict[str, Better]:
        """Each metric key's direction, e.g. {"fid": "lower", "precision": "higher"}."""
        return {key: way for metric in self.metrics.values() for key, way in metric.better.items()}

    @property
    def floor_split(self) -> str:
        """The split whose examples stand in for samples in the real-vs-real floor."""
        return "test" if self.real_split == "train" else "train"

    def prepare(self, data: DataBundle, budget_s: float | None = None) -> None:
        """Pick and load (or train) the feature space and compute the real features, once per dataset;
        a feature space that would cost more to train than `budget_s` (the training it measures) says so."""
        if self._data_id == id(data):
            return
        self._data_id, self._floors = id(data), {}
        needs = {need for metric in self.metrics.values() for need in metric.needs}
        space = self.features if needs & {"features", "logits"} else None  # no classifier trained for nothing
        if space is not None and hasattr(space, "resolve"):
            space = space.resolve(data)
        self.space = space
        with forked_rng(self.device):
            if space is not None:
                space.prepare(data, self.value_range, self.device, budget_s)
            self._real = data.examples(self.n_real, self.real_split)["x"]
            self._real_features = in_chunks(space.features, self._real) if space is not None else None
            wants_logits = space is not None and space.has_logits and "logits" in needs
            self._real_logits = logits_of(space, self._real, lambda: self._real_features) if wants_logits else None

    def context(self, pipeline: Any, data: DataBundle, held_out: str) -> EvalContext:
        return EvalContext(self._real, lambda: draw_samples(pipeline, self.n_fake, self.seed, data, held_out),
                           self.space, pipeline, data, self.seed, self._real_features, self._real_logits,
                           self.value_range, self.device, held_out)

    def floor_context(self, data: DataBundle, held_out: str) -> EvalContext | None:
        """Held-out examples in place of samples, and no model; None without a second split."""
        if not data.has(self.floor_split):
            return None
        return EvalContext(self._real, lambda: data.examples(self.n_fake, self.floor_split)["x"].float(), self.space,
                           None, data, self.seed, self._real_features, self._real_logits, self.value_range,
                           self.device, held_out)

    def floor_values(self, ctx: EvalContext) -> dict[str, float | None]:
        """The floor of every metric: metrics of samples run on `ctx` (held-out data for samples),
        metrics of the model give their own reference (or none)."""
        sample_metrics = {n: m for n, m in self.metrics.items() if "model" not in m.needs}
        values = self.run_metrics(ctx, sample_metrics)[0]
        for metric in self.metrics.values():
            if "model" in metric.needs:
                with forked_rng(self.device):
                    values.update(metric.floor(ctx) or {})
        return values

    def run_metrics(self, ctx: EvalContext, metrics: Mapping[str, Metric] | None = None
                    ) -> tuple[dict[str, float | None], dict[str, str], dict[str, float]]:
        """Each metric that can run on `ctx`; non-finite results (a diverged model) become None."""
        values: dict[str, float | None] = {}
        skipped, seconds = {}, {}
        for name, metric in (self.metrics if metrics is None else metrics).items():
            reason = metric.missing(ctx)
            compares_samples = "model" not in metric.needs
            if reason is None and compares_samples and not getattr(ctx.pipeline, "generative", True):
                reason = f"{type(ctx.pipeline).__name__} draws no samples of the data"
            if reason is None and compares_samples and not bool(torch.isfinite(ctx.fake).all()):
                reason = "the generated samples hold NaN or inf"
                values.update(dict.fromkeys(metric.better))
            if reason is not None:
                skipped[name] = reason
                continue
            t0 = time.perf_counter()
            with forked_rng(self.device):
                values.update({k: v if v is None or math.isfinite(v) else None for k, v in metric(ctx).items()})
            seconds[name] = round(time.perf_counter() - t0, 3)
        return values, skipped, seconds

    def __call__(self, pipeline: Any, data: DataBundle, held_out: str = "test",
                 budget_s: float | None = None) -> Evaluation:
        """Every configured metric of `pipeline` on `data` (metrics of the model on split `held_out`),
        their floor, directions and protocol; `budget_s`: the training this evaluation measures.

        `seconds` holds each metric's own time (the first one also pays for drawing the samples
        and their features), `prepare` (the feature space and real features, first call only),
        `floor` (once per held-out split) and `total`."""
        t0 = time.perf_counter()
        self.prepare(data, budget_s)
        prepared = time.perf_counter()
        result = Evaluation()
        with torch.no_grad():
            ctx = self.context(pipeline, data, held_out)
            result.values, result.skipped, result.seconds = self.run_metrics(ctx)
            if self.floor and held_out not in self._floors:
                floor_start = time.perf_counter()
                floor_ctx = self.floor_context(data, held_out)
                self._floors[held_out] = self.floor_values(floor_ctx) if floor_ctx is not None else {}
                result.seconds["floor"] = round(time.perf_counter() - floor_start, 3)
        result.seconds["prepare"] = round(prepared - t0, 3)
        result.seconds["total"] = round(time.perf_counter() - t0, 3)
        if self.floor:
            result.floor = {k: v for k, v in self._floors[held_out].items() if k in result.values}
        result.directions = {k: way for k, way in self.better().items() if k in result.values}
        ran = [m for name, m in self.metrics.items() if name not in result.skipped and m.better]
        result.first_key = next(iter(ran[0].better)) if ran else None
        result.protocol = self.protocol(data, [n for n in self.metrics if n not in result.skipped], held_out)
        return result

    def protocol(self, data: DataBundle, ran: list[str], held_out: str) -> dict[str, Any]:
        """Everything that decides the numbers, so two runs' numbers can be compared."""
        n_floor = min(self.n_fake, len(data.split(self.floor_split)[0])) if self.floor and data.has(self.floor_split) else 0
        return {
            "features": self.space.protocol() if self.space is not None else None,
            "real_split": self.real_split,
            "n_real": len(self._real),
            "n_fake": self.n_fake,
            "floor_split": self.floor_split if n_floor else None,
            "n_floor": n_floor,
            "floor_of": {key: self.metrics[name].floor_label for name in ran for key in self.metrics[name].better},
            "held_out_split": held_out,
            "seed": self.seed,
            "metrics": {name: {"target": f"{type(m).__module__}.{type(m).__qualname__}", **m.protocol()}
                        for name, m in self.metrics.items() if name in ran},
        }
