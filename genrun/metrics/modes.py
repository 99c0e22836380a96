"""Mode coverage on 2D Gaussian mixtures, as in PacGAN (Lin et al. 2018, sec. 5.1).

A sample is high quality when it lies within 3 sigma of its nearest mode in every
coordinate; `modes` counts modes with at least one high-quality sample, `hq` is the
percentage of high-quality samples, and `kl_to_uniform` is KL(histogram of high-quality
samples over the modes || uniform), in nats (PacGAN's "reverse KL"; runs written before this
name called it `rkl`). Stacked MNIST's metric (genrun.metrics.stacked) writes the same keys.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genrun.metrics.base import EvalContext, Metric
from genrun.ranges import PositiveInt


def mode_metrics(samples: Tensor, modes: Tensor, sigma: float) -> dict[str, float | int | None]:
    """Mode metrics of `samples` [N, 2] against mixture centres `modes` [K, 2]."""
    samples, modes = samples.detach().float().cpu(), modes.float().cpu()
    finite = torch.isfinite(samples).all(1)
    nearest = torch.cdist(samples.nan_to_num(), modes).argmin(1)
    close = ((samples - modes[nearest]).abs() <= 3 * sigma).all(1) & finite
    counts = torch.bincount(nearest[close], minlength=len(modes)).double()
    n_hq = int(counts.sum())
    kl = None
    if n_hq > 0:
        p = counts / n_hq
        nz = p > 0
        kl = float((p[nz] * (p[nz] * len(modes)).log()).sum())
    return {"modes": int((counts > 0).sum()), "hq": 100.0 * n_hq / len(samples), "kl_to_uniform": kl}


class MixtureModes(Metric):
    """PacGAN's mode metrics of `n` samples (2,500 in the paper) on a 2D Gaussian mixture."""

    name = "modes"
    better = {"kl_to_uniform": "lower", "modes": "higher", "hq": "higher"}
    needs = ()

    def __init__(self, n: PositiveInt = 2500) -> None:
        self.n = n
        self.used = 0

    def missing(self, ctx: EvalContext) -> str | None:
        if ctx.data.modes is None:
            return "the data is not a Gaussian mixture with known modes (ring8, grid25)"
        return None

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        samples = ctx.fake[: self.n]
        self.used = len(samples)
        return mode_metrics(samples, ctx.data.modes, ctx.data.sigma)

    def protocol(self) -> dict[str, Any]:
        return {"samples": self.used, "within": "3 sigma of the nearest mode in every coordinate"}
