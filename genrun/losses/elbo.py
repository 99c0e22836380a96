"""The evidence lower bound and the distributions it is made of (all in nats per example)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genrun.errors import GenrunError


def gaussian_kl_standard(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example, closed form (Kingma & Welling 2014, app. B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) per example for x in [0, 1] (continuous Bernoulli-style targets allowed)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_log_prob(mean: Tensor, log_scale: Tensor, x: Tensor) -> Tensor:
    """log N(x; mean, exp(log_scale)^2) per example, summed over dimensions."""
    z = (x - mean) * torch.exp(-log_scale)
    elem = -0.5 * z.pow(2) - log_scale - 0.5 * math.log(2 * math.pi)
    return elem.flatten(1).sum(1)


class ELBO:
    """-ELBO = -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z)); beta = 1 is the VAE,
    beta > 1 the beta-VAE (Higgins et al. 2017). Returns the mean over the batch."""

    kind = "likelihood"

    def __init__(self, beta: float = 1.0) -> None:
        if beta < 0:
            raise GenrunError(f"loss.beta={beta}: must be >= 0")
        self.beta = beta

    def __call__(self, log_px: Tensor, kl: Tensor) -> dict[str, Tensor]:
        recon = -log_px.mean()
        kl_mean = kl.mean()
        return {"loss": recon + self.beta * kl_mean, "vae/recon": recon, "vae/kl": kl_mean}
