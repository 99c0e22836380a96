"""Generators of discrete values: a categorical distribution over `levels` values per pixel (the
discrete BGAN of Hjelm et al. 2018: softmax per pixel), and ways to draw from it."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrun.ranges import PositiveInt, Shape


class CategoricalPixels(nn.Module):
    """z -> logits [N, levels, C, H, W]: a network built for `levels` x C channels (no output squashing)."""

    def __init__(self, net: Callable[..., nn.Module], shape: Shape, levels: PositiveInt) -> None:
        super().__init__()
        self.shape, self.levels = tuple(shape), levels
        self.net = net(shape=[levels * self.shape[0], *self.shape[1:]], out_range=None)

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(z)
        return out.view(len(z), self.levels, *self.shape)


def categorical_indices(logits: Tensor, u: Tensor) -> Tensor:
    """Draws of each pixel's categorical (logits [N, levels, C, H, W]) by inverse CDF at uniforms u of
    shape [..., N, C, H, W] (leading dims: several draws per z): level indices shaped like u."""
    cdf = logits.float().softmax(1).movedim(1, -1).cumsum(-1)  # [N, C, H, W, levels]
    return (cdf < u.unsqueeze(-1)).sum(-1).clamp(max=logits.shape[1] - 1)


def categorical_log_prob(logits: Tensor, indices: Tensor) -> Tensor:
    """log g(x | z) of whole images: the chosen levels' log-probabilities summed over pixels ([..., N])."""
    log_p = logits.float().log_softmax(1).movedim(1, -1)  # [N, C, H, W, levels]
    log_p = log_p.expand(*indices.shape, log_p.shape[-1])
    return log_p.gather(-1, indices.unsqueeze(-1)).squeeze(-1).flatten(-3).sum(-1)


def gumbel_softmax_values(logits: Tensor, values: Tensor, temperature: float) -> Tensor:
    """The continuous relaxation (Jang et al. 2017; Maddison et al. 2017): softmax((logits + Gumbel
    noise) / temperature) over the levels, as the expected pixel value under it (differentiable)."""
    u = torch.rand_like(logits, dtype=torch.float32).clamp(1e-10, 1.0 - 1e-7)
    gumbel = -torch.log(-torch.log(u))
    soft = F.softmax((logits.float() + gumbel) / temperature, dim=1)
    return torch.einsum("nk...,k->n...", soft, values)
