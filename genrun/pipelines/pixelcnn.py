"""PixelCNN family (van den Oord et al. 2016a; gated: 2016b): an autoregressive model of the
discrete pixels, its log-likelihood exact: log P(x) = sum over pixels (and colours) of
log P(x_i | x_<i), trained by maximum likelihood (loss=nll).

Each pixel's distribution (`model.output`): `bernoulli` for binarised images
(dataset.binarize=static|dynamic), `softmax` (256-way, the paper's) or `logistic_mixture`
(discretised mixture of logistics, Salimans et al. 2017, with `mixtures` components) for 8-bit
pixels; `auto` picks bernoulli or softmax from the data. Samples are drawn pixel by pixel (and
colour by colour) from fixed uniforms (`sample_noise`), one network pass per value: H x W x C
passes, each over the rows drawn so far; `progress(done, total)`, when set (genrun-sample sets it),
hears about every row. Optimizer role: `generator`. Metrics read `discrete_log_likelihood`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.likelihood import (
    bernoulli_pixels_log_prob,
    categorical_log_prob,
    from_levels,
    image_range,
    levels_in_words,
    logistic_mixture_log_prob,
    pixel_levels,
    sample_logistic_mixture,
    to_levels,
)
from genrun.nets.common import numel
from genrun.pipelines.base import Pipeline
from genrun.ranges import Bounds, PositiveInt

OUTPUTS = ("auto", "bernoulli", "softmax", "logistic_mixture")


def pick_output(output: str, binarize: str) -> str:
    """`auto`: Bernoulli on binarised pixels, 256-way softmax on 8-bit ones; a choice that does not fit
    the data is an error (a 256-level distribution of binary pixels wastes its mass, and a Bernoulli
    cannot give 8-bit pixels a probability)."""
    if output not in OUTPUTS:
        raise GenrunError(f"model.output={output!r}: valid: {', '.join(OUTPUTS)}")
    binary = binarize != "none"
    if output == "auto":
        return "bernoulli" if binary else "softmax"
    if binary and output != "bernoulli":
        raise GenrunError(f"model.output={output} models 8-bit pixels, but dataset.binarize={binarize} gives binary "
                          "ones: use model.output=bernoulli (or auto), or dataset.binarize=none")
    if not binary and output == "bernoulli":
        raise GenrunError("model.output=bernoulli models binary pixels, but this data has 8-bit ones: set "
                          "dataset.binarize=dynamic (or static), or use model.output=softmax or logistic_mixture")
    return output


class PixelCNNPipeline(Pipeline):
    loss_kinds = ("exact_likelihood",)
    primary_metric = "loss/nll"
    default_metrics = ("bpd", "nll")  # bpd on 8-bit pixels (skipped on binarised ones), nll in nats per image
    sample_metrics_by_default = False  # H x W x C network passes per sample: fid & co. on request only

    def __init__(
        self,
        net: Callable[..., nn.Module],
        loss: Any,
        optimizers: Mapping[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        data_range: Bounds = None,
        binarize: str = "none",
        output: str = "auto",
        mixtures: PositiveInt = 5,
    ) -> None:
        super().__init__(loss, optimizers, device)
        self.low, self.high = image_range(data_range)
        self.output, self.levels = pick_output(output, binarize), pixel_levels(binarize)
        self.mixtures = mixtures
        params = {"bernoulli": 1, "softmax": self.levels, "logistic_mixture": 3 * mixtures}[self.output]
        self.net = self.add_net("pixelcnn", net(params=params))
        self.shape, self.dims = tuple(self.net.shape), numel(self.net.shape)
        self.add_optimizer("generator", self.net)
        self.phases = [Phase("nll", ("generator",), self.nll_objective)]
        self.progress: Callable[[int, int], None] | None = None
        stack = "gated vertical and horizontal stacks" if self.net.gated else "masked convolutions A then B"
        self.likelihood_description = (
            f"exact: PixelCNN ({stack}) over {levels_in_words(self.levels, binarize)}, "
            f"output {self.output}{f' ({mixtures} logistics)' if self.output == 'logistic_mixture' else ''}, "
            "raster order (colours R, G, B within a pixel); nats per example")

    # -- the model ------------------------------------------------------------------------
    def net_input(self, k: Tensor) -> Tensor:
        """Discrete values -> the network's input in [-1, 1]."""
        return 2 * k.float() / (self.levels - 1) - 1

    def log_prob(self, out: Tensor, k: Tensor) -> Tensor:
        """log P(k) per example from the network's output [B, C, params, H, W]."""
        if self.output == "bernoulli":
            return bernoulli_pixels_log_prob(out[:, :, 0], k)
        if self.output == "softmax":
            return categorical_log_prob(out, k)
        return logistic_mixture_log_prob(out, k, self.levels)

    def log_likelihood(self, x: Tensor) -> Tensor:
        k = to_levels(x, self.low, self.high, self.levels)
        return self.log_prob(self.net(self.net_input(k)), k)

    def nll_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        terms = self.loss(self.log_likelihood(batch["x"]), self.dims)
        return terms.pop("loss"), terms

    def draw(self, params: Tensor, u: Tensor) -> Tensor:
        """One value per row of params [B, params] from the uniforms u [B, 2] (inverse CDF)."""
        params = params.float()
        if self.output == "bernoulli":
            return (u[:, 0] < torch.sigmoid(params[:, 0])).long()
        if self.output == "softmax":
            cdf = F.softmax(params, -1).cumsum(-1)
            return (cdf < u[:, :1]).sum(-1).clamp(max=self.levels - 1)
        return sample_logistic_mixture(params, self.levels, u)

    # -- the protocol -----------------------------------------------------------------------
    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        """Two uniforms per value to draw (a mixture uses both: component, then value)."""
        return {"u": torch.rand(n, *self.shape, 2, device=self.device, generator=rng)}

    def generate(self, noise: Noise) -> Tensor:
        """Raster-order sampling: each value from a pass over the rows drawn so far (the output of a
        row reads no row below it, so cropping gives the same numbers at half the cost)."""
        u = noise["u"]
        channels, height, width = self.shape
        k = torch.zeros(len(u), channels, height, width, dtype=torch.long, device=self.device)
        with self.evaluating():
            for i in range(height):
                for j in range(width):
                    for c in range(channels):
                        out = self.net(self.net_input(k[:, :, : i + 1]))
                        k[:, c, i, j] = self.draw(out[:, c, :, i, j], u[:, c, i, j])
                if self.progress is not None:
                    self.progress(i + 1, height)
        return from_levels(k, self.low, self.high, self.levels)

    # -- what metrics read (genrun.metrics.likelihood) ----------------------------------------
    @property
    def pixel_levels(self) -> int:
        return self.levels

    def discrete_log_likelihood(self, batch: Batch, k: int = 1, rng: torch.Generator | None = None) -> Tensor:
        """log P(x) of each held-out image, exact, in nats (`k` and `rng` do not apply)."""
        with self.evaluating():
            return self.log_likelihood(batch["x"])
