"""MINE's statistics network T(x, z): one real value per pair (Belghazi et al. 2018, sec. 3.1)."""

from __future__ import annotations

import torch
from torch import nn

from genrun.errors import GenrunError
from genrun.nets.common import numel
from genrun.nets.mlp import mlp
from genrun.ranges import NonNegativeInt, PositiveInt, Shape


def size_of(shape: Shape) -> int:
    return int(shape) if isinstance(shape, int) else numel(shape)


class StatisticsNetwork(nn.Module):
    """(x, z) -> T(x, z): an MLP on the flattened, concatenated pair.

    A smooth activation (ELU by default) suits the smooth log density ratios T approximates.
    """

    def __init__(
        self, x_shape: Shape, z_shape: Shape, width: PositiveInt = 128, depth: NonNegativeInt = 2, act: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.x_size, self.z_size = size_of(x_shape), size_of(z_shape)
        if min(self.x_size, self.z_size) < 1:
            raise GenrunError(
                f"statistics network inputs of sizes {self.x_size} and {self.z_size}: both must be >= 1 "
                f"(model=mine reads them from dataset.dim: use a dataset of pairs, e.g. dataset=gaussians_corr)"
            )
        self.net = mlp([self.x_size + self.z_size, *[width] * depth, 1], act if act is not None else nn.ELU())

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), z.flatten(1)], 1)).squeeze(1)
