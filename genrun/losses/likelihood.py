"""Exact likelihoods of discrete images, in one unit for every family: nats per example and bits
per dimension, with the dequantisation and logit transform of the flows.

Images reach a family as values in the data's range (e.g. [-1, 1]); `to_levels` recovers their
discrete values (0..255 for 8-bit pixels, 0..1 for binarised ones). A discrete model (PixelCNN)
gives log P(x) directly; a density model (a flow, the VAE's continuous Bernoulli) sees
y = (x + u) / L, u ~ U[0, 1)^D, and log P(x) >= E_u[log p(y)] - D log L (Theis et al. 2016), so
`discrete_log_likelihood` turns its log-density on [0, 1]^D into a bound in the same unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from genrun.errors import GenrunError

LOG_2 = math.log(2.0)


def image_range(data_range: Sequence[float] | None) -> tuple[float, float]:
    """The data's pixel range; a likelihood of discrete pixels needs images."""
    if data_range is None:
        raise GenrunError("this family models discrete pixels: it needs images (a dataset with a value range, "
                          "e.g. dataset=digits or mnist), not points")
    low, high = (float(v) for v in data_range)
    return low, high


def levels_in_words(levels: int, binarize: str) -> str:
    """What the discrete values are, for the protocol."""
    if levels == 2:
        return f"pixels binarised {binarize} (2 values)"
    return "8-bit pixels (256 values; data of other values is rounded to them)"


def pixel_levels(binarize: str) -> int:
    """Discrete values per pixel: 2 for binarised images (dataset.binarize=static|dynamic), else 256."""
    return 256 if binarize == "none" else 2


def to_levels(x: Tensor, low: float, high: float, levels: int) -> Tensor:
    """Values in [low, high] -> integers 0..levels-1 (long), by rounding: exact for images stored as
    uint8 (MNIST, CIFAR-10) or binarised, a quantisation for data with other values (digits)."""
    return torch.round((x.float() - low) / (high - low) * (levels - 1)).clamp_(0, levels - 1).long()


def from_levels(k: Tensor, low: float, high: float, levels: int) -> Tensor:
    """Integers 0..levels-1 -> values in [low, high] (the inverse of `to_levels`)."""
    return low + (high - low) * k.float() / (levels - 1)


def dequantize(k: Tensor, levels: int, rng: torch.Generator | None = None) -> Tensor:
    """y = (k + u) / levels with u ~ U[0, 1) per value: a point in [0, 1) (Uria et al. 2013; Real NVP)."""
    return (k.float() + torch.rand(k.shape, device=k.device, generator=rng)) / levels


def discrete_log_likelihood(log_density: Tensor, dims: int, levels: int) -> Tensor:
    """log p(y) on [0, 1]^D -> the bound E_u[log p(y)] - D log L on log P(x) (Theis et al. 2016, eq. 5)."""
    return log_density - dims * math.log(levels)


def bits_per_dim(nll: Tensor | float, dims: int) -> Tensor | float:
    """Nats per example -> bits per dimension: nll / (D ln 2) (Real NVP's (NLL + D ln 256) / (D ln 2)
    when nll is already the discrete one, as here)."""
    return nll / (dims * LOG_2)


def logit_transform(y: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """y in [0, 1] -> z = logit(alpha + (1 - 2 alpha) y) and log |dz/dy| summed per example (Dinh et
    al. 2017, sec. 4.1; the symmetric form of the reference implementations, which keeps both ends
    finite). alpha = 0 is the plain logit, finite only inside (0, 1)."""
    p = alpha + (1 - 2 * alpha) * y
    log_p, log_1mp = torch.log(p), torch.log1p(-p)
    log_det = (math.log(1 - 2 * alpha) - log_p - log_1mp).flatten(1).sum(1)
    return log_p - log_1mp, log_det


def inverse_logit_transform(z: Tensor, alpha: float) -> Tensor:
    """z -> y = (sigmoid(z) - alpha) / (1 - 2 alpha), clamped to [0, 1]."""
    return ((torch.sigmoid(z) - alpha) / (1 - 2 * alpha)).clamp(0, 1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed per example."""
    return (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def standard_logistic_log_prob(z: Tensor) -> Tensor:
    """log of the standard logistic density, -log(1 + e^z) - log(1 + e^-z), per example (NICE's prior
    for MNIST, Dinh et al. 2014, sec. 3.4)."""
    return -(F.softplus(z) + F.softplus(-z)).flatten(1).sum(1)


PRIORS = {"gaussian": standard_normal_log_prob, "logistic": standard_logistic_log_prob}


def sample_prior(prior: str, shape: tuple[int, ...], device: torch.device, rng: torch.Generator | None) -> Tensor:
    """Draws of the base distribution (logistic: log u - log(1 - u), u uniform)."""
    if prior == "gaussian":
        return torch.randn(shape, device=device, generator=rng)
    u = torch.rand(shape, device=device, generator=rng).clamp_(1e-6, 1 - 1e-6)
    return torch.log(u) - torch.log1p(-u)


def check_prior(prior: str) -> str:
    if prior not in PRIORS:
        raise GenrunError(f"model.prior={prior!r}: valid: {', '.join(PRIORS)}")
    return prior


def categorical_log_prob(logits: Tensor, k: Tensor) -> Tensor:
    """log softmax(logits)[k] summed per example; logits [B, C, L, H, W], k [B, C, H, W] (PixelCNN's
    256-way softmax, van den Oord et al. 2016a, sec. 5.3)."""
    return -F.cross_entropy(logits.float().transpose(1, 2), k, reduction="none").flatten(1).sum(1)


def bernoulli_pixels_log_prob(logits: Tensor, k: Tensor) -> Tensor:
    """log Bernoulli(k; sigmoid(logits)) summed per example (binarised pixels, k in {0, 1})."""
    return -F.binary_cross_entropy_with_logits(logits.float(), k.float(), reduction="none").flatten(1).sum(1)


def logistic_mixture_log_prob(params: Tensor, k: Tensor, levels: int) -> Tensor:
    """log P(k) of the discretised logistic mixture (Salimans et al. 2017, eq. 2), summed per example.

    params [B, C, 3M, H, W]: M mixture logits, M means, M log-scales per value, the value
    x = 2k / (L - 1) - 1 in [-1, 1], each bin of width 2 / (L - 1); the lowest bin takes the mass
    below it and the highest the mass above it (the CDF's edges), as in PixelCNN++.
    """
    logit_pi, mean, log_scale = params.float().chunk(3, dim=2)
    log_scale = log_scale.clamp(min=-7.0)
    x = (2 * k.float() / (levels - 1) - 1).unsqueeze(2)
    half_bin = 1.0 / (levels - 1)
    inv_s = torch.exp(-log_scale)
    plus, minus = inv_s * (x - mean + half_bin), inv_s * (x - mean - half_bin)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus)
    log_one_minus_cdf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus))
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * (x - mean)
    log_pdf_mid = mid - log_scale - 2 * F.softplus(mid) + math.log(2 * half_bin)  # for tiny bins, in the middle
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
    log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, inner))
    return torch.logsumexp(log_probs + F.log_softmax(logit_pi, dim=2), dim=2).flatten(1).sum(1)


def sample_logistic_mixture(params: Tensor, levels: int, u: Tensor) -> Tensor:
    """One integer value per row of params [B, 3M] from two uniforms per row, u [B, 2]: a
    component by the inverse CDF of the weights, then a logistic draw, clamped to [-1, 1] and
    rounded to its bin."""
    logit_pi, mean, log_scale = params.float().chunk(3, dim=-1)
    cdf = F.softmax(logit_pi, -1).cumsum(-1)
    component = (cdf < u[:, :1]).sum(-1, keepdim=True).clamp(max=logit_pi.shape[-1] - 1)
    mu, s = mean.gather(-1, component).squeeze(-1), log_scale.clamp(min=-7.0).gather(-1, component).squeeze(-1)
    v = u[:, 1].clamp(1e-5, 1 - 1e-5)
    x = (mu + torch.exp(s) * (torch.log(v) - torch.log1p(-v))).clamp(-1, 1)
    return torch.round((x + 1) / 2 * (levels - 1)).long()


class NegativeLogLikelihood:
    """Maximum likelihood: minimise the mean NLL of the batch, in nats per dimension so that a
    learning rate suits any image size; logs `loss/nll` in nats per example and `loss/bpd`."""

    kind = "exact_likelihood"

    def __call__(self, log_likelihood: Tensor, dims: int) -> dict[str, Tensor]:
        nll = -log_likelihood.float().mean()
        return {"loss": nll / dims, "loss/nll": nll, "loss/bpd": bits_per_dim(nll, dims)}
