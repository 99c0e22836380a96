"""Sample-quality statistics against closed forms and point sets with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genrun.metrics.distances import (
    density_coverage,
    fid,
    frechet_distance,
    kid,
    kl_to_reference,
    mmd2_unbiased,
    precision_recall,
)

F64 = torch.float64


def random_spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=F64)


def test_frechet_distance_matches_the_closed_form_with_a_general_matrix_root():
    from scipy.linalg import sqrtm

    mu1, mu2 = torch.arange(5, dtype=F64), torch.ones(5, dtype=F64)
    s1, s2 = random_spd(5, 0), random_spd(5, 1)
    expected = ((mu1 - mu2) ** 2).sum().item() + np.trace(s1.numpy() + s2.numpy() - 2 * sqrtm(s1.numpy() @ s2.numpy()).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # commuting (diagonal) covariances: |m1 - m2|^2 + sum (sqrt a - sqrt b)^2
    a, b = torch.tensor([1.0, 4.0, 9.0], dtype=F64), torch.tensor([4.0, 1.0, 9.0], dtype=F64)
    zero = torch.zeros(3, dtype=F64)
    assert frechet_distance(zero, torch.diag(a), zero + 2, torch.diag(b)) == pytest.approx(12 + 1 + 1, rel=1e-12)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_samples_approaches_the_gaussians_distance():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x = torch.randn(n, 2, generator=g, dtype=F64)
    y = torch.randn(n, 2, generator=g, dtype=F64) * torch.tensor([2.0, 0.5], dtype=F64) + torch.tensor([1.0, -1.0], dtype=F64)
    expected = 1 + 1 + (1 - 2) ** 2 + (1 - 0.5) ** 2
    assert fid(x, y) == pytest.approx(expected, abs=0.03)


def test_mmd2_unbiased_is_the_hand_computed_sum():
    x, y = torch.tensor([[1.0], [2.0], [0.0]], dtype=F64), torch.tensor([[1.0], [-1.0]], dtype=F64)
    k = lambda a, b: (a * b + 1) ** 3  # noqa: E731 (d = 1)
    xs, ys = [1.0, 2.0, 0.0], [1.0, -1.0]
    within_x = sum(k(a, b) for i, a in enumerate(xs) for j, b in enumerate(xs) if i != j) / 6
    within_y = sum(k(a, b) for i, a in enumerate(ys) for j, b in enumerate(ys) if i != j) / 2
    across = sum(k(a, b) for a in xs for b in ys) / 6
    assert mmd2_unbiased(x, y).item() == pytest.approx(within_x + within_y - 2 * across, rel=1e-12)


def test_kid_std_is_the_population_std_over_subsets_as_in_torch_fidelity():
    """torch-fidelity reports np.std of the subsets' MMD^2 (N in the denominator): with two subsets
    that is |v1 - v2| / 2, not the sample std's |v1 - v2| / sqrt(2)."""
    real = torch.randn(40, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    fake = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=F64) + 0.3
    g = torch.Generator().manual_seed(7)
    values = [mmd2_unbiased(real[torch.randperm(40, generator=g)[:20]], fake[torch.randperm(50, generator=g)[:20]])
              for _ in range(2)]
    mean, std = kid(real, fake, subsets=2, subset_size=20, seed=7)
    assert mean == pytest.approx(float(sum(values)) / 2, rel=1e-12)
    assert std == pytest.approx(abs(float(values[0] - values[1])) / 2, rel=1e-12)
    assert std == pytest.approx(float(np.std([float(v) for v in values])), rel=1e-12)


def test_kid_is_unbiased_for_equal_distributions_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    same = [kid(torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g), subsets=20, subset_size=100,
                seed=s)[0] for s in range(20)]
    spread = np.std(same) / math.sqrt(len(same))
    assert abs(np.mean(same)) < 4 * spread  # expectation 0: no bias to detect
    assert min(same) < 0 < max(same)  # an unbiased estimate of 0 takes both signs
    shifted, std = kid(torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 0.5, subsets=20,
                       subset_size=100)
    assert shifted > 4 * std > 0


LINE = torch.arange(100, dtype=F64).view(-1, 1)  # points 0, 1, ..., 99 on a line


def test_precision_and_recall_on_point_sets_with_known_answers():
    assert precision_recall(LINE, LINE.clone()) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(LINE, LINE + 1000) == {"precision": 0.0, "recall": 0.0}
    # half the support: every sample is realistic (precision 1); the balls of the fakes 0..49
    # (radius 2, point 49's radius 3) reach reals up to 52: recall 53 / 100
    assert precision_recall(LINE, LINE[:50]) == {"precision": 1.0, "recall": 0.53}


def test_density_and_coverage_on_point_sets_with_known_answers():
    assert density_coverage(LINE, LINE + 1000) == {"density": 0.0, "coverage": 0.0}
    # k = 5: interior reals have radius 3, so reals up to 52 hold one of the fakes 0..49
    assert density_coverage(LINE, LINE[:50])["coverage"] == 0.53
    both = density_coverage(LINE, LINE.clone())
    assert both["coverage"] == 1.0 and 0.9 < both["density"] < 1.5  # matching sets: density near 1
    dense = density_coverage(LINE, torch.full((10, 1), 50.0, dtype=F64))  # all fakes at one real point
    assert dense["coverage"] == pytest.approx(7 / 100)  # the reals 47..53 hold point 50 in their ball
    assert dense["density"] == pytest.approx(7 / 5)  # each fake sits in 7 balls, over k = 5


def test_kl_of_a_histogram_to_its_reference():
    assert kl_to_reference(torch.tensor([5, 5]), torch.tensor([0.5, 0.5])) == 0.0
    assert kl_to_reference(torch.tensor([10, 0]), torch.tensor([0.5, 0.5])) == pytest.approx(math.log(2))
    assert kl_to_reference(torch.tensor([1, 1]), torch.tensor([1.0, 0.0])) == math.inf
