"""Likelihoods of held-out data: the VAE family's bounds, and every likelihood family's in one unit.

`elbo` and `iwae` are in nats per example (higher is better), of the likelihood the family's
`likelihood_description` names (e.g. Bernoulli pixels binarised dynamically: the binarised-MNIST
numbers of the literature), on at most `n` examples of the held-out split.

`nll` and `bpd` (lower is better) measure every family that gives the probability of discrete
images, `discrete_log_likelihood(batch, k, rng)`: exact for PixelCNN, a bound through one
dequantisation draw for the flows (and for the VAE on 8-bit pixels), the IWAE bound with k
importance samples for the VAE family. So a flow, a PixelCNN and a VAE land in one column:
`nll` in nats per image (binarised MNIST's unit), `bpd` = nll / (D ln 2) for 8-bit pixels.
"""

from __future__ import annotations

import math
import weakref
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


# log P(x) of the held-out examples, per evaluation context and setting: nll and bpd compute it once
_COMPUTED: weakref.WeakKeyDictionary[EvalContext, dict[tuple, tuple[torch.Tensor, int]]] = weakref.WeakKeyDictionary()
LIKELIHOOD_FAMILIES = "realnvp, nice, pixelcnn and the VAE family on images"


class NegativeLogLikelihood(LikelihoodMetric):
    """`nll`: -log P(x) of held-out images as discrete data, nats per example (binarised pixels:
    the Bernoulli probability of the image; 8-bit pixels: of its 256-level values); exact, or
    the family's bound (dequantisation, importance sampling with `k` samples)."""

    name = "nll"
    better = {"nll": "lower"}
    reads, lacks = "discrete_log_likelihood", f"likelihood of discrete images ({LIKELIHOOD_FAMILIES})"

    def __init__(self, k: PositiveInt = 100, n: PositiveInt = 2000, batch: PositiveInt = 100) -> None:
        super().__init__(n)
        self.k, self.batch = k, batch
        self.dims, self.levels, self.bound_k = 0, 0, None

    def missing(self, ctx: EvalContext) -> str | None:
        return super().missing(ctx) or (self.refuses(ctx.pipeline) if ctx.pipeline is not None else None)

    def refuses(self, pipeline: Any) -> str | None:
        """Why this family gives no likelihood of discrete images at all (checked before training:
        genrun.build); a family that has one is measured, or left out with the reason (bpd of
        binarised pixels)."""
        family = type(pipeline).__name__
        if not callable(getattr(pipeline, self.reads, None)):
            return f"{family} gives no likelihood of images; {self.name} measures {LIKELIHOOD_FAMILIES}"
        if getattr(pipeline, "pixel_levels", None) is None:
            kind = getattr(pipeline, "likelihood", "")
            return (f"{family} with likelihood {kind} gives no probability of discrete pixels; {self.name} needs "
                    "binarised pixels (Bernoulli) or 8-bit ones (continuous Bernoulli, dequantised)")
        return None

    def log_likelihoods(self, ctx: EvalContext) -> torch.Tensor:
        """log P(x) per held-out example, computed once per evaluation for nll and bpd alike."""
        key = (ctx.held_out, self.n, self.k, self.batch)
        cache = _COMPUTED.setdefault(ctx, {})
        if key not in cache:
            rng = torch.Generator(ctx.pipeline.device).manual_seed(ctx.seed)
            batch = self.held_out(ctx)
            values = torch.cat([
                ctx.pipeline.discrete_log_likelihood(
                    {name: v[i:i + self.batch].to(ctx.pipeline.device) for name, v in batch.items()}, self.k, rng
                ).detach().double().cpu()
                for i in range(0, len(batch["x"]), self.batch)])
            cache[key] = values, int(batch["x"][0].numel())
        values, self.dims = cache[key]
        self.split, self.examples = ctx.held_out, len(values)
        self.levels = int(ctx.pipeline.pixel_levels)
        self.bound_k = self.k if getattr(ctx.pipeline, "likelihood_uses_k", False) else None
        self.description = getattr(ctx.pipeline, "discrete_likelihood_description", None) or \
            getattr(ctx.pipeline, "likelihood_description", "")
        return values

    def nll(self, ctx: EvalContext) -> float:
        return float(-self.log_likelihoods(ctx).mean())

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return {"nll": self.nll(ctx)}

    def protocol(self) -> dict[str, Any]:
        k = {"k": self.bound_k} if self.bound_k is not None else {}  # importance samples of a bound
        return {**super().protocol(), "dims": self.dims, "levels": self.levels, **k, "unit": "nats per example"}


class BitsPerDimension(NegativeLogLikelihood):
    """`bpd`: nll / (D ln 2) for 8-bit pixels (Real NVP's (NLL + D ln 256) / (D ln 2) of the density
    of dequantised pixels in [0, 1]^D); binarised images are measured in nats per image (`nll`)."""

    name = "bpd"
    better = {"bpd": "lower"}

    def missing(self, ctx: EvalContext) -> str | None:
        reason = super().missing(ctx)
        if reason is None and ctx.pipeline.pixel_levels == 2:
            return "binarised pixels are measured in nats per image (metric nll), not in bits per dimension"
        return reason

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        nll = self.nll(ctx)
        return {"bpd": nll / (self.dims * math.log(2))}

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "unit": "bits per dimension: nll / (dims ln 2)"}
