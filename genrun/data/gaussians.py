"""Correlated Gaussian pairs with a known mutual information (Belghazi et al. 2018, sec. 4.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genrun.data.bundle import DataBundle
from genrun.errors import GenrunError
from genrun.ranges import Correlation, PositiveInt, Seed


@dataclass
class PairedSamples(DataBundle):
    """Examples are pairs stacked as [2, *item]: x in row 0, z in row 1; with the true I(X; Z)."""

    mutual_information: float | None = None  # nats, when known in closed form


def gaussian_mutual_information(rho: Correlation, dim: PositiveInt) -> float:
    """I(X; Z) in nats for X, Z ~ N(0, I_dim) with corr(X_i, Z_i) = rho: -dim/2 log(1 - rho^2)."""
    return -0.5 * dim * math.log1p(-rho * rho)


def check_keys(rho: Correlation, dim: PositiveInt, size: PositiveInt, test_size: PositiveInt) -> tuple[float, int]:
    """The numbers, or a one-line error naming the bad key."""
    try:
        rho = float(rho)
    except (TypeError, ValueError) as exc:
        raise GenrunError(f"dataset.rho={rho!r}: must be a number with |rho| < 1") from exc
    if not abs(rho) < 1:
        raise GenrunError(f"dataset.rho={rho}: the correlation must satisfy |rho| < 1 (at |rho| = 1 the MI is infinite)")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise GenrunError(f"dataset.dim={dim!r}: must be an integer >= 1")
    if size < 1 or test_size < 1:
        raise GenrunError(f"dataset.source.size={size} and test_size={test_size} must be >= 1")
    return rho, dim


def correlated_gaussians(
    rho: Correlation = 0.5, dim: PositiveInt = 1, size: PositiveInt = 100_000, test_size: PositiveInt = 100_000, seed: Seed = 0
) -> PairedSamples:
    """`size` training and `test_size` held-out pairs (x, z), z = rho x + sqrt(1 - rho^2) e, as [N, 2, dim]."""
    rho, dim = check_keys(rho, dim, size, test_size)
    g = torch.Generator().manual_seed(seed)
    n = size + test_size
    x = torch.randn(n, dim, generator=g)
    z = rho * x + math.sqrt(1 - rho * rho) * torch.randn(n, dim, generator=g)
    pairs = torch.stack([x, z], 1)
    return PairedSamples(train=pairs[:size], test=pairs[size:],
                         mutual_information=gaussian_mutual_information(rho, dim))
