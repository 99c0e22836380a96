"""Likelihood bounds of the families that have one (the VAE family), on the held-out split."""

from __future__ import annotations

from typing import Any

import torch

from genrun.metrics.base import EvalContext, Metric
from genrun.schema import PositiveInt


class IWAE(Metric):
    """The k-sample importance-weighted bound on log p(x) (Burda et al. 2016), mean over the
    held-out examples, in nats per example (higher is better); k = 5000 is the literature's figure."""

    name = "iwae"
    better = {"iwae": "higher"}
    needs = ("model",)

    def __init__(self, k: PositiveInt = 100, n: PositiveInt = 10000, batch: PositiveInt = 100) -> None:
        self.k, self.n, self.batch = k, n, batch
        self.description = ""
        self.examples = 0

    def missing(self, ctx: EvalContext) -> str | None:
        if ctx.pipeline is None:
            return "it needs the model"
        if not hasattr(ctx.pipeline, "importance_weighted_bound"):
            return f"{type(ctx.pipeline).__name__} has no likelihood bound (the VAE family has)"
        if ctx.data.test is None:
            return "the dataset has no held-out split"
        return None

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        pipeline = ctx.pipeline
        held_out = ctx.data.examples(self.n, "test")
        g = torch.Generator(pipeline.device).manual_seed(ctx.seed)
        total, count = 0.0, len(held_out["x"])
        for i in range(0, count, self.batch):
            part = {key: v[i:i + self.batch].to(pipeline.device) for key, v in held_out.items()}
            total += float(pipeline.importance_weighted_bound(part, self.k, g).double().sum())
        self.description = getattr(pipeline, "likelihood_description", "")
        self.examples = count
        return {"iwae": total / count}

    def protocol(self) -> dict[str, Any]:
        return {"k": self.k, "split": "test", "examples": self.examples, "likelihood": self.description}
