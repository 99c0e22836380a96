"""Likelihood bounds of the families that have one (the VAE family), on held-out data.

Both are in nats per example (higher is better), of the likelihood the family's
`likelihood_description` names (e.g. Bernoulli pixels binarised dynamically: the binarised-MNIST
numbers of the literature), on at most `n` examples of the held-out split.
"""

from __future__ import annotations

from typing import Any

import torch

from genrun.metrics.base import EvalContext
from genrun.metrics.heldout import HeldOutMetric
from genrun.ranges import PositiveInt


class LikelihoodMetric(HeldOutMetric):
    """A bound on log p(x) of held-out examples; the protocol names what it bounds."""

    def __init__(self, n: PositiveInt = 2000) -> None:
        super().__init__(n)
        self.description = ""

    def bound(self, ctx: EvalContext, per_example: Any) -> float:
        """The mean over the held-out examples of per_example(part, rng), one seeded rng for all."""
        rng = torch.Generator(ctx.pipeline.device).manual_seed(ctx.seed)
        values = self.per_example(ctx, lambda part: per_example(part, rng).double(), self.held_out(ctx))
        self.description = getattr(ctx.pipeline, "likelihood_description", "")
        return float(values.double().mean())

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "likelihood": self.description}


class ELBO(LikelihoodMetric):
    """`elbo`: the evidence lower bound with one posterior draw per example (beta = 1)."""

    name = "elbo"
    better = {"elbo": "higher"}
    reads, lacks = "elbo_per_example", "evidence lower bound (the VAE family has)"

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return {"elbo": self.bound(ctx, ctx.pipeline.elbo_per_example)}


class IWAE(LikelihoodMetric):
    """`iwae`: the k-sample importance-weighted bound on log p(x) (Burda et al. 2016); it is >= the
    ELBO and tightens with k; k = 5000 is the literature's figure."""

    name = "iwae"
    better = {"iwae": "higher"}
    reads, lacks = "importance_weighted_bound", "likelihood bound (the VAE family has)"

    def __init__(self, k: PositiveInt = 100, n: PositiveInt = 2000, batch: PositiveInt = 100) -> None:
        super().__init__(n)
        self.k, self.batch = k, batch

    def per_example(self, ctx: EvalContext, fn: Any, batch: dict) -> torch.Tensor:
        """In passes of `batch` examples (each decodes its k codes in passes of bounded size)."""
        device = ctx.pipeline.device
        n = len(batch["x"])
        return torch.cat([fn({k: v[i:i + self.batch].to(device) for k, v in batch.items()}).cpu()
                          for i in range(0, n, self.batch)])

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return {"iwae": self.bound(ctx, lambda part, rng: ctx.pipeline.importance_weighted_bound(part, self.k, rng))}

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "k": self.k}
