"""The evidence lower bound and the distributions it is made of (all in nats per example)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genrun.errors import GenrunError
from genrun.ranges import NonNegative


def gaussian_kl_standard(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example, closed form (Kingma & Welling 2014, app. B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def diagonal_gaussian_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension (N(0, I) for mu = logvar = 0)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


def importance_weighted_bound(log_weights: Tensor) -> Tensor:
    """log (1/k) sum_i w_i over dim 0, for log w_i = log p(x, z_i) - log q(z_i | x) with z_i ~ q:
    the k-sample bound on log p(x) of Burda et al. 2016 (eq. 8); k = 1 is the ELBO's estimate."""
    return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[0])


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) per example: a log-probability for binary x; for x strictly between 0
    and 1 the same formula is no log-likelihood (see continuous_bernoulli_log_prob)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


CB_SERIES_BELOW = 0.1  # |eta| under which log C is its Taylor series (the closed form cancels in float32)


def continuous_bernoulli_log_norm(logits: Tensor) -> Tensor:
    """log C(lambda) of the continuous Bernoulli, lambda = sigmoid(logits) (Loaiza-Ganem & Cunningham
    2019, eq. 7): C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta / 2) for eta = logits.

    Written as log|eta| - log(1 - e^-|eta|) + log(1 + e^-|eta|), finite at any eta (log 2 at 0);
    for |eta| < 0.1 as its series log 2 + eta^2/12 - 7 eta^4/1440 (error < 4e-11 there), as the
    paper and torch do near lambda = 1/2, where the closed form's terms cancel in float32 and lose
    the gradient eta/6 altogether.
    """
    a = logits.abs()
    small = a < CB_SERIES_BELOW
    safe = torch.where(small, torch.ones_like(a), a)  # the other branch's gradient stays finite
    closed = torch.log(safe) - torch.log(-torch.expm1(-safe)) + torch.log1p(torch.exp(-safe))
    sq = logits * logits
    series = math.log(2.0) + sq / 12 - 7 * sq * sq / 1440
    return torch.where(small, series, closed)


def continuous_bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) per example of the continuous Bernoulli: a density on [0, 1]^D, so the
    ELBO of greyscale pixels is a bound on their log-likelihood (Loaiza-Ganem & Cunningham 2019)."""
    log_norm = continuous_bernoulli_log_norm(logits).flatten(1).sum(1)
    return bernoulli_log_prob(logits, x) + log_norm


def continuous_bernoulli_mean(logits: Tensor) -> Tensor:
    """E[x] = 1 / (1 - e^-eta) - 1 / eta (eq. 8 in terms of eta); 1/2 + eta/12 near eta = 0."""
    small = logits.abs() < 1e-2
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = 1 / -torch.expm1(-safe) - 1 / safe
    return torch.where(small, 0.5 + logits / 12, exact)


def gaussian_log_prob(mean: Tensor, log_scale: Tensor, x: Tensor) -> Tensor:
    """log N(x; mean, exp(log_scale)^2) per example, summed over dimensions."""
    z = (x - mean) * torch.exp(-log_scale)
    elem = -0.5 * z.pow(2) - log_scale - 0.5 * math.log(2 * math.pi)
    return elem.flatten(1).sum(1)


class ELBO:
    """-ELBO = -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z)); beta = 1 is the VAE,
    beta > 1 the beta-VAE (Higgins et al. 2017). Returns the mean over the batch."""

    kind = "likelihood"

    def __init__(self, beta: NonNegative = 1.0) -> None:
        if beta < 0:
            raise GenrunError(f"loss.beta={beta}: must be >= 0")
        self.beta = beta

    def __call__(self, log_px: Tensor, kl: Tensor) -> dict[str, Tensor]:
        recon = -log_px.mean()
        kl_mean = kl.mean()
        return {"loss": recon + self.beta * kl_mean, "vae/recon": recon, "vae/kl": kl_mean}
