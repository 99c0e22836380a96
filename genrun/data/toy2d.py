"""2D Gaussian mixtures of the mode-collapse literature (PacGAN, VEEGAN, Unrolled GAN)."""

from __future__ import annotations

import math

import torch

from genrun.data.bundle import DataBundle
from genrun.errors import GenrunError
from genrun.ranges import Positive, PositiveInt, Seed

HELD_OUT = 10_000  # extra points drawn for held-out metrics


def mixture(modes: torch.Tensor, sigma: Positive, size: PositiveInt, seed: Seed) -> DataBundle:
    """`size` points drawn uniformly over `modes` with isotropic noise `sigma`; labels = mode index."""
    if size < 1 or sigma <= 0:
        raise GenrunError(f"dataset.source.size={size} and sigma={sigma} must be positive")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(modes), (size + HELD_OUT,), generator=g)
    points = modes[labels] + sigma * torch.randn(size + HELD_OUT, 2, generator=g)
    return DataBundle(train=points[:size], labels=labels[:size], test=points[size:], test_labels=labels[size:],
                      modes=modes, sigma=sigma)


def ring(n_modes: PositiveInt = 8, radius: Positive = 1.0, sigma: Positive = 0.01, size: PositiveInt = 100_000, seed: Seed = 0) -> DataBundle:
    """`n_modes` Gaussians evenly spaced on a circle of `radius`."""
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    modes = radius * torch.stack([angles.cos(), angles.sin()], 1).float()
    return mixture(modes, sigma, size, seed)


def grid(side: PositiveInt = 5, spacing: Positive = 2.0, sigma: Positive = 0.05, size: PositiveInt = 100_000, seed: Seed = 0) -> DataBundle:
    """side x side Gaussians on a centred square lattice (5, 2.0: {-4, -2, 0, 2, 4}^2)."""
    axis = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    modes = torch.cartesian_prod(axis, axis)
    return mixture(modes, sigma, size, seed)
