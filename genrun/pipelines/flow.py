"""Normalising-flow families: Real NVP (Dinh et al. 2017) and NICE (Dinh et al. 2014), trained by
maximum likelihood, their log-likelihood exact by the change of variables.

The flow (genrun.nets.flows: `model.flow`) models the dequantised pixels: each image's discrete
values k (0..255, or 0..1 for binarised images; genrun.losses.likelihood.to_levels) become
y = (k + u) / L with u ~ U[0, 1) drawn afresh every time, then, with `logit_alpha` set, the logit
of alpha + (1 - 2 alpha) y, whose log-determinant counts in the density. log p(y) = log N(z) (or
NICE's logistic prior) + the flow's log |det| + the logit's, and log P(k) >= E_u[log p(y)] - D log L.
Optimizer role: `generator` (the flow is the model's only network). Metrics read
`discrete_log_likelihood` (bpd, nll).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.losses.likelihood import (
    PRIORS,
    check_prior,
    dequantize,
    discrete_log_likelihood,
    from_levels,
    image_range,
    inverse_logit_transform,
    levels_in_words,
    logit_transform,
    pixel_levels,
    sample_prior,
    to_levels,
)
from genrun.nets.common import numel
from genrun.pipelines.base import Pipeline
from genrun.ranges import Bounds, Range

LogitAlpha = Annotated[float | None, Range(0, 0.5, high_open=True)]  # null: no logit transform


class FlowPipeline(Pipeline):
    loss_kinds = ("exact_likelihood",)
    primary_metric = "loss/nll"
    default_metrics = ("bpd", "nll")  # bpd on 8-bit pixels (skipped on binarised ones), nll in nats per image

    def __init__(
        self,
        flow: nn.Module,
        loss: Any,
        optimizers: Mapping[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        data_range: Bounds = None,
        binarize: str = "none",
        logit_alpha: LogitAlpha = 0.05,
        prior: str = "gaussian",
    ) -> None:
        super().__init__(loss, optimizers, device)
        self.low, self.high = image_range(data_range)
        self.levels, self.alpha, self.prior = pixel_levels(binarize), logit_alpha, check_prior(prior)
        self.flow = self.add_net("flow", flow)
        self.shape, self.dims = tuple(flow.shape), numel(flow.shape)
        self.add_optimizer("generator", self.flow)
        self.phases = [Phase("nll", ("generator",), self.nll_objective)]
        transform = f"logit(alpha + (1 - 2 alpha) y), alpha = {logit_alpha}" if logit_alpha is not None else "none"
        self.likelihood_description = (
            f"exact density of dequantised {levels_in_words(self.levels, binarize)}: y = (k + u) / {self.levels}, "
            f"u ~ U[0, 1), one draw per example; transform {transform}; prior {prior}; "
            f"nll = -log p(y) + D log {self.levels} (nats per example)")

    # -- the model ------------------------------------------------------------------------
    def log_density(self, y: Tensor) -> Tensor:
        """log p(y) of points y in [0, 1]^D, per example: prior, flow and logit log-determinants."""
        log_det = 0.0
        if self.alpha is not None:
            y, log_det = logit_transform(y, self.alpha)
        z, flow_log_det = self.flow(y)
        return PRIORS[self.prior](z) + flow_log_det + log_det

    def log_likelihood(self, x: Tensor, rng: torch.Generator | None = None) -> Tensor:
        """The bound on log P(k) of images x (data range) with one dequantisation draw, nats per example."""
        k = to_levels(x, self.low, self.high, self.levels)
        return discrete_log_likelihood(self.log_density(dequantize(k, self.levels, rng)), self.dims, self.levels)

    def nll_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        terms = self.loss(self.log_likelihood(batch["x"]), self.dims)
        return terms.pop("loss"), terms

    # -- the protocol -----------------------------------------------------------------------
    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {"z": sample_prior(self.prior, (n, self.dims), self.device, rng)}

    def generate(self, noise: Noise) -> Tensor:
        """z -> y through the inverse flow (and logit), then y's discrete value, in the data range."""
        with self.evaluating():
            y = self.flow.inverse(noise["z"]).float()
            y = inverse_logit_transform(y, self.alpha) if self.alpha is not None else y.clamp(0, 1)
            k = torch.floor(y * self.levels).clamp(0, self.levels - 1)
            return from_levels(k, self.low, self.high, self.levels).reshape(-1, *self.shape)

    # -- what metrics read (genrun.metrics.likelihood) ----------------------------------------
    @property
    def pixel_levels(self) -> int:
        return self.levels

    def discrete_log_likelihood(self, batch: Batch, k: int = 1, rng: torch.Generator | None = None) -> Tensor:
        """log P(x) of each held-out image, nats: exact density, one dequantisation draw from `rng`
        (`k`, the importance samples of a bound, does not apply)."""
        with self.evaluating():
            return self.log_likelihood(batch["x"], rng)
