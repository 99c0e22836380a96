"""Gaussian codes: an encoder's output as a diagonal Gaussian, and the reparameterised draw.

Used by every family with a Gaussian encoder: the VAE family's q(z | x), the adversarial
autoencoder's and ALI's stochastic encoders (a deterministic encoder's output is its code).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def gaussian_parameters(out: Tensor) -> tuple[Tensor, Tensor]:
    """An encoder's [N, 2d] output -> mean and log-variance of a diagonal Gaussian, each [N, d]."""
    mu, logvar = out.chunk(2, dim=1)
    return mu, logvar


def reparameterize(mu: Tensor, logvar: Tensor, rng: torch.Generator | None = None,
                   samples: int | None = None) -> Tensor:
    """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) (Kingma & Welling 2014, sec. 2.4): a draw
    of N(mu, diag(exp(logvar))) that gradients flow through; `samples` = k draws, [k, *mu.shape]."""
    shape = mu.shape if samples is None else (samples, *mu.shape)
    eps = torch.randn(shape, device=mu.device, dtype=mu.dtype, generator=rng)
    return mu + eps * (0.5 * logvar).exp()


def code_mean(encoder: nn.Module, x: Tensor, stochastic: bool) -> Tensor:
    """The code of x: a deterministic encoder's output, or a Gaussian encoder's mean."""
    out = encoder(x)
    return gaussian_parameters(out)[0] if stochastic else out


def code_sample(encoder: nn.Module, x: Tensor, stochastic: bool, rng: torch.Generator | None = None) -> Tensor:
    """A code of q(z | x): a deterministic encoder's output, or a reparameterised Gaussian draw."""
    out = encoder(x)
    return reparameterize(*gaussian_parameters(out), rng) if stochastic else out
