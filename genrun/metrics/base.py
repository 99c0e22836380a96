"""What a metric is, what it reads, and the feature spaces it reads them in.

A metric is one small class chosen in config (`configs/metrics/<name>.yaml`, `genrun
metrics=[fid,kid,pr]`). It reads an `EvalContext`, which computes on first use, and shares
between metrics, everything they read: the real and generated samples, their features and
class logits in the run's feature space, the model, the data and which held-out split model
metrics read. A metric says which direction is better for each of its keys (for `best.pt` and
genrun-report), what its real-vs-real floor is (the same metric with held-out data in place of
samples, or a reference of its own such as a probe on raw pixels), and why it cannot run on a
given run (no feature space, no class logits, a family without a likelihood bound), so the
evaluator can leave it out with a reason instead of failing a finished training run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from genrun.data.bundle import Batch, DataBundle

Better = Literal["lower", "higher"]
CHUNK = 500  # examples per forward pass of a generator, a feature network or a family's metric method


@runtime_checkable
class FeatureSpace(Protocol):
    """A fixed network that maps samples (in the data's own value range) to features, and
    optionally to class logits: Inception-v3, genrun's own classifier, or the raw values."""

    name: str
    has_logits: bool

    def prepare(self, data: DataBundle, value_range: tuple[float, float] | None, device: torch.device,
                budget_s: float | None = None) -> None:
        """Load or train the network for this data (called once, before any features); a space
        that trains says so when that costs more than `budget_s` (the training it measures)."""

    def features(self, x: Tensor) -> Tensor:
        """[N, ...] samples -> [N, D] features (float, on any device)."""

    def logits(self, x: Tensor) -> Tensor:
        """[N, ...] samples -> [N, K] class logits (only when `has_logits`). A space whose logits
        are a head on its features may also define `logits_of_features(features)`, so that an
        evaluation that needs both runs its network once."""

    def protocol(self) -> dict[str, Any]:
        """What a reader needs to compare numbers: the network, the sha256 of its weights,
        the input resizing, and e.g. a classifier's held-out accuracy."""


def in_chunks(fn: Callable[[Any], Tensor], x: Tensor | Batch, size: int = CHUNK) -> Tensor:
    """fn over the rows of x (a tensor, or a batch of tensors cut alike) in chunks of `size`
    (bounded memory), concatenated on the CPU."""
    n = len(x["x"]) if isinstance(x, dict) else len(x)

    def rows(i: int) -> Any:
        return {k: v[i:i + size] for k, v in x.items()} if isinstance(x, dict) else x[i:i + size]

    return torch.cat([fn(rows(i)).detach().float().cpu() for i in range(0, n, size)])


class EvalContext:
    """The inputs of every metric of one evaluation, each computed once when first read.

    `real` are examples of the data (the evaluator picks the split); `draw_fake()` returns the
    generated samples (or, for the real-vs-real floor, a second set of real examples).
    `pipeline` is None for the floor: metrics that need the model give their `floor` there.
    `held_out` names the split model metrics read (validation during training when the data
    has one, else test). `value_range` is the data's pixel range and `device` where networks of
    metrics run.
    """

    def __init__(self, real: Tensor, draw_fake: Callable[[], Tensor], space: FeatureSpace | None,
                 pipeline: Any, data: DataBundle, seed: int, real_features: Tensor | None = None,
                 real_logits: Tensor | None = None, value_range: tuple[float, float] | None = None,
                 device: torch.device | None = None, held_out: str = "test") -> None:
        self.real, self.draw_fake, self.space = real, draw_fake, space
        self.pipeline, self.data, self.seed = pipeline, data, seed
        self._real_features, self._real_logits = real_features, real_logits
        self.value_range, self.device = value_range, device or torch.device("cpu")
        self.held_out = held_out

    @cached_property
    def fake(self) -> Tensor:
        return self.draw_fake()

    @cached_property
    def real_features(self) -> Tensor:
        if self._real_features is not None:
            return self._real_features
        return in_chunks(self.space.features, self.real)

    @cached_property
    def fake_features(self) -> Tensor:
        return in_chunks(self.space.features, self.fake)

    @cached_property
    def real_logits(self) -> Tensor:
        if self._real_logits is not None:
            return self._real_logits
        return logits_of(self.space, self.real, lambda: self.real_features)

    @cached_property
    def fake_logits(self) -> Tensor:
        return logits_of(self.space, self.fake, lambda: self.fake_features)


def logits_of(space: FeatureSpace, x: Tensor, features: Callable[[], Tensor]) -> Tensor:
    """Class logits of x: from its features when the space's logits are a head on them, else anew."""
    head = getattr(space, "logits_of_features", None)
    return in_chunks(head, features()) if head is not None else in_chunks(space.logits, x)


class Metric:
    """Base of every metric: `__call__(ctx)` -> {key: value}; `better` gives each key's direction.

    `needs` lists what the metric reads beyond the samples: "features" (a feature space),
    "logits" (a feature space with class logits), "model" (the trained pipeline, e.g. a
    likelihood bound). A metric of samples has the real-vs-real floor (itself on held-out data
    in place of samples); a metric of the model gives its own reference in `floor`, or none.
    `floor_label` says what the floor is, beside the number.
    """

    name: ClassVar[str] = ""
    better: ClassVar[dict[str, Better]] = {}
    needs: ClassVar[tuple[str, ...]] = ("features",)
    floor_label: ClassVar[str] = "held-out data"

    def missing(self, ctx: EvalContext) -> str | None:
        """Why this metric cannot run on this run, or None when it can."""
        if ("features" in self.needs or "logits" in self.needs) and ctx.space is None:
            return "the run has no feature space (features=none)"
        if "logits" in self.needs and not ctx.space.has_logits:
            return f"the feature space {ctx.space.name} gives no class logits"
        if "model" in self.needs and ctx.pipeline is None:
            return "it needs the model"
        return None

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        """A metric of the model: its reference value from the data alone (`ctx.pipeline` is None),
        or None when it has none. Metrics of samples are run on held-out data instead."""
        return None

    def protocol(self) -> dict[str, Any]:
        """This metric's own settings (e.g. KID's subsets), recorded beside its numbers."""
        return {}
