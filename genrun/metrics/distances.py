"""Sample-quality statistics between two sets of features (real and generated), feature space
agnostic: Inception pool features, genrun's own classifier features, or raw points.

Each function takes [N, D] and [M, D] tensors and computes in float64 on their device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genrun.errors import GenrunError


def mean_and_covariance(features: Tensor) -> tuple[Tensor, Tensor]:
    """Sample mean and unbiased covariance (N - 1 in the denominator, as numpy's np.cov)."""
    x = features.double().flatten(1)
    if len(x) < 2:
        raise GenrunError(f"a covariance needs at least 2 samples, got {len(x)}")
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (len(x) - 1)


def psd_sqrt(matrix: Tensor) -> Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues < 0,
    from rounding, clamped to 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians (Heusel et al. 2017).

    tr (S1 S2)^(1/2) = sum of sqrt(eig(S1^(1/2) S2 S1^(1/2))): that matrix is symmetric PSD, so
    no complex square root and no ill-conditioned general sqrtm is needed.
    """
    root1 = psd_sqrt(cov1.double())
    cross = torch.linalg.eigvalsh(root1 @ cov2.double() @ root1).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).double().pow(2).sum() + torch.trace(cov1.double()) + torch.trace(cov2.double()) - 2 * cross
    return float(value)


def fid(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance of the Gaussians fitted to two feature sets."""
    return frechet_distance(*mean_and_covariance(real), *mean_and_covariance(fake))


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x, y) = (x.y / d + 1)^3, KID's kernel (Binkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + 1).pow(3)


def mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """The unbiased estimate of MMD^2 with the polynomial kernel (diagonals left out)."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * kxy.mean()


def kid(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): mean and std of the unbiased MMD^2 over
    `subsets` random subsets of `subset_size` of each set (drawn without replacement; fewer
    samples shrink the subsets). Its expectation is 0 when the two distributions are equal. The
    std is the population one (over the subsets, N in the denominator), as torch-fidelity's."""
    x, y = real.double().flatten(1), fake.double().flatten(1)
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise GenrunError(f"KID needs at least 2 samples of each set, got {len(x)} and {len(y)}")
    g = torch.Generator().manual_seed(seed)
    values = torch.stack([
        mmd2_unbiased(x[torch.randperm(len(x), generator=g)[:size].to(x.device)],
                      y[torch.randperm(len(y), generator=g)[:size].to(y.device)])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std(correction=0))


def knn_radii(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance of each point to its k-th nearest neighbour in its own set (itself excluded)."""
    if not 1 <= k < len(x):
        raise GenrunError(f"k={k} nearest neighbours need more than k samples (got {len(x)})")
    x = x.double().flatten(1)
    # the 1st smallest distance is the point itself (0)
    return torch.cat([torch.cdist(x[i:i + chunk], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), chunk)])


def ball_counts(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """For each point, how many centres' balls hold it; for each centre, whether its ball holds
    any point (chunked over the points: memory stays chunk x len(centres))."""
    points, centres = points.double().flatten(1), centres.double().flatten(1)
    per_point, any_point = [], torch.zeros(len(centres), dtype=torch.bool, device=centres.device)
    for i in range(0, len(points), chunk):
        inside = torch.cdist(points[i:i + chunk], centres) <= radii[None, :]
        per_point.append(inside.sum(1))
        any_point |= inside.any(0)
    return torch.cat(per_point), any_point


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision = share of generated
    samples inside the real manifold (the union of balls reaching each real sample's k-th
    neighbour), recall = share of real samples inside the generated manifold."""
    precision = (ball_counts(fake, real, knn_radii(real, k))[0] > 0).double().mean()
    recall = (ball_counts(real, fake, knn_radii(fake, k))[0] > 0).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020): density = mean count of real balls holding each
    generated sample, over k (1 when the two match; can exceed 1); coverage = share of real
    samples whose ball holds at least one generated sample."""
    counts, covered = ball_counts(fake, real, knn_radii(real, k))
    density = counts.double().sum() / (k * len(fake))
    return {"density": float(density), "coverage": float(covered.double().mean())}


def kl_to_reference(counts: Tensor, reference: Tensor) -> float:
    """KL(p || q) in nats of the histogram `counts` to the reference probabilities (zero counts add 0)."""
    p = counts.double() / counts.sum()
    q = reference.double() / reference.sum()
    nz = p > 0
    if bool((q[nz] == 0).any()):
        return math.inf
    return float((p[nz] * (p[nz] / q[nz]).log()).sum())
