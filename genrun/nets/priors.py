"""Latent priors p(z) an adversarial autoencoder matches its codes to (Makhzani et al. 2016).

`model.prior=gaussian|mixture|uniform` picks the class through the config's `_target_`
(genrun.nets.priors.${model.prior}); extra settings go under `model.prior_dist`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genrun.errors import GenrunError
from genrun.ranges import Positive, PositiveInt, Real


class Prior:
    """Samples of p(z) on a device, from an optional torch.Generator (reproducible pictures)."""

    def __init__(self, dim: PositiveInt) -> None:
        if dim < 1:
            raise GenrunError(f"model.z_dim={dim}: must be >= 1")
        self.dim = dim

    def sample(self, n: int, device: torch.device, rng: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError


class Gaussian(Prior):
    """N(0, I)."""

    def sample(self, n: int, device: torch.device, rng: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.dim, device=device, generator=rng)


class Uniform(Prior):
    """Uniform on [low, high]^dim."""

    def __init__(self, dim: PositiveInt, low: Real = -1.0, high: Real = 1.0) -> None:
        super().__init__(dim)
        if not low < high:
            raise GenrunError(f"uniform prior: low={low} must be below high={high}")
        self.low, self.high = low, high

    def sample(self, n: int, device: torch.device, rng: torch.Generator | None = None) -> Tensor:
        u = torch.rand(n, self.dim, device=device, generator=rng)
        return self.low + (self.high - self.low) * u


class Mixture(Prior):
    """`components` 2D Gaussians in a ring, each stretched along its radius (Makhzani et al. 2016, fig. 4).

    Component i is N([radius, 0], diag(radial_std^2, tangential_std^2)) rotated by 2*pi*i/components.
    """

    def __init__(self, dim: PositiveInt, components: PositiveInt = 10, radius: Positive = 2.0, radial_std: Positive = 0.5,
                 tangential_std: Positive = 0.1) -> None:
        super().__init__(dim)
        if dim != 2:
            raise GenrunError(f"model.prior=mixture is a 2D prior but model.z_dim={dim}; set model.z_dim=2")
        if components < 1:
            raise GenrunError(f"mixture prior: components={components} must be >= 1")
        self.components, self.radius = components, radius
        self.radial_std, self.tangential_std = radial_std, tangential_std

    def sample_labelled(self, n: int, device: torch.device,
                        rng: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Samples and the component each came from."""
        k = torch.randint(self.components, (n,), device=device, generator=rng)
        eps = torch.randn(n, 2, device=device, generator=rng)
        r = self.radius + self.radial_std * eps[:, 0]
        t = self.tangential_std * eps[:, 1]
        angle = k.to(eps.dtype) * (2 * math.pi / self.components)
        cos, sin = angle.cos(), angle.sin()
        return torch.stack([r * cos - t * sin, r * sin + t * cos], 1), k

    def sample(self, n: int, device: torch.device, rng: torch.Generator | None = None) -> Tensor:
        return self.sample_labelled(n, device, rng)[0]


# the names `model.prior` takes (the config's _target_ is genrun.nets.priors.${model.prior})
gaussian, uniform, mixture = Gaussian, Uniform, Mixture
