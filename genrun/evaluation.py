"""One evaluator for the end of a run, evaluation during training and `genrun-eval`.

It draws the generated samples from its own seeded generator inside a forked RNG (training
continues bit-exactly whether or not it evaluated), computes the real examples' features
once, runs the configured metrics, the real-vs-real floor of the sample metrics (held-out
examples in place of generated ones: the best a perfect model could score with these sample
counts), and returns every number with the protocol that produced it.
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
from genrun.metrics.base import CHUNK, Better, EvalContext, FeatureSpace, Metric, in_chunks
from genrun.schema import PositiveInt, Seed

log = logging.getLogger("genrun")


@dataclass
class Evaluation:
    """The numbers of one evaluation (flat keys), their real-vs-real floor and their protocol."""

    values: dict[str, float] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # metric name -> why it did not run
    seconds: dict[str, float] = field(default_factory=dict)  # metric name -> wall time


def forked_rng(device: torch.device):
    """torch's RNG state saved on entry and restored on exit (CPU, and the device's own)."""
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices, device_type=device.type if device.type != "cpu" else "cuda")


def draw_samples(pipeline: Any, n: int, seed: int) -> Tensor:
    """n samples of the model (in chunks) from a generator seeded with `seed`, on the CPU."""
    g = torch.Generator(pipeline.device).manual_seed(seed)
    with forked_rng(pipeline.device):
        return torch.cat([pipeline.sample(min(CHUNK, n - i), g).detach().float().cpu() for i in range(0, n, CHUNK)])


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
        self._floor: tuple[dict[str, float], dict[str, str]] | None = None

    def better(self) -> dict[str, Better]:
        """Each metric key's direction, e.g. {"fid": "lower", "precision": "higher"}."""
        return {key: way for metric in self.metrics.values() for key, way in metric.better.items()}

    def prepare(self, data: DataBundle) -> None:
        """Pick and load (or train) the feature space and compute the real features, once per dataset."""
        if self._data_id == id(data):
            return
        self._data_id, self._floor = id(data), None
        needs = {need for metric in self.metrics.values() for need in metric.needs}
        space = self.features if needs & {"features", "logits"} else None  # no classifier trained for nothing
        if space is not None and hasattr(space, "resolve"):
            space = space.resolve(data)
        self.space = space
        with forked_rng(self.device):
            if space is not None:
                space.prepare(data, self.value_range, self.device)
            self._real = data.examples(self.n_real, self.real_split)["x"]
            self._real_features = in_chunks(space.features, self._real) if space is not None else None
            wants_logits = space is not None and space.has_logits and "logits" in needs
            self._real_logits = in_chunks(space.logits, self._real) if wants_logits else None

    def context(self, pipeline: Any, data: DataBundle) -> EvalContext:
        return EvalContext(self._real, lambda: draw_samples(pipeline, self.n_fake, self.seed), self.space, pipeline,
                           data, self.seed, self._real_features, self._real_logits, self.value_range, self.device)

    def floor_context(self, data: DataBundle) -> EvalContext | None:
        """Held-out examples in place of samples; None without a second split."""
        other = "test" if self.real_split == "train" else "train"
        if (data.test if other == "test" else data.train) is None:
            return None
        return EvalContext(self._real, lambda: data.examples(self.n_fake, other)["x"].float(), self.space, None,
                           data, self.seed, self._real_features, self._real_logits, self.value_range, self.device)

    def run_metrics(self, ctx: EvalContext) -> tuple[dict[str, float | None], dict[str, str], dict[str, float]]:
        """Each metric that can run on `ctx`; non-finite results (a diverged model) become None."""
        values: dict[str, float | None] = {}
        skipped, seconds = {}, {}
        for name, metric in self.metrics.items():
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

    def __call__(self, pipeline: Any, data: DataBundle) -> Evaluation:
        """Every configured metric of `pipeline` on `data`, its floor and its protocol.

        `seconds` holds each metric's own time (the first one also pays for drawing the samples
        and their features), `prepare` (the feature space and real features, first call only),
        `floor` (first call only) and `total`."""
        t0 = time.perf_counter()
        self.prepare(data)
        prepared = time.perf_counter()
        result = Evaluation()
        with torch.no_grad():
            ctx = self.context(pipeline, data)
            result.values, result.skipped, result.seconds = self.run_metrics(ctx)
            if self.floor and self._floor is None:
                floor_start = time.perf_counter()
                floor_ctx = self.floor_context(data)
                self._floor = self.run_metrics(floor_ctx)[:2] if floor_ctx is not None else ({}, {})
                result.seconds["floor"] = round(time.perf_counter() - floor_start, 3)
        result.seconds["prepare"] = round(prepared - t0, 3)
        result.seconds["total"] = round(time.perf_counter() - t0, 3)
        if self.floor:
            result.floor = {k: v for k, v in self._floor[0].items() if k in result.values}
        result.protocol = self.protocol(data, ran=[n for n in self.metrics if n not in result.skipped])
        return result

    def protocol(self, data: DataBundle, ran: list[str]) -> dict[str, Any]:
        """Everything that decides the numbers, so two runs' numbers can be compared."""
        other = "test" if self.real_split == "train" else "train"
        n_floor = min(self.n_fake, len(data.test if other == "test" else data.train)) if self.floor else 0
        return {
            "features": self.space.protocol() if self.space is not None else None,
            "real_split": self.real_split,
            "n_real": len(self._real),
            "n_fake": self.n_fake,
            "floor_split": other if n_floor else None,
            "n_floor": n_floor,
            "seed": self.seed,
            "metrics": {name: {"target": f"{type(m).__module__}.{type(m).__qualname__}", **m.protocol()}
                        for name, m in self.metrics.items() if name in ran},
        }
