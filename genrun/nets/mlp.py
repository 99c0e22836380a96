"""Fully connected networks: for 2D toy data and for flattened images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genrun.nets.common import OutputRange, check_pack, numel
from genrun.nets.layers import MinibatchDiscrimination, apply_spectral_norm
from genrun.ranges import Bounds, NonNegativeInt, PositiveInt, Shape


def mlp(sizes: Sequence[int], act: nn.Module, batchnorm: bool = False) -> nn.Sequential:
    """Linear layers of the given sizes with `act` (and optional BatchNorm) between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(act)
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """z -> sample of `shape`; ReLU hidden layers (BatchNorm optional), output in the data range."""

    def __init__(
        self,
        z_dim: PositiveInt,
        shape: Shape,
        width: PositiveInt = 256,
        depth: NonNegativeInt = 3,
        batchnorm: bool = False,
        out_range: Bounds = None,
    ) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.net = mlp([z_dim, *[width] * depth, numel(shape)], nn.ReLU(), batchnorm)
        self.out = OutputRange(out_range)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(z)).view(-1, *self.shape)


class Discriminator(nn.Module):
    """sample -> one logit (or `out_dim` features); LeakyReLU 0.2 hidden layers.

    `net` is the whole stack; its last module is the head, everything before it `features`.
    Options for GAN training: `pack` samples judged at once (PacGAN, the input holds pack x
    the features of one sample), `spectral_norm` on every layer, `minibatch_discrimination`
    kernels before the head (see genrun.nets.layers).
    """

    def __init__(
        self,
        shape: Shape,
        width: PositiveInt = 256,
        depth: NonNegativeInt = 3,
        out_dim: PositiveInt = 1,
        *,
        pack: PositiveInt = 1,
        spectral_norm: bool = False,
        minibatch_discrimination: NonNegativeInt = 0,
        minibatch_kernel_dim: PositiveInt = 5,
    ) -> None:
        super().__init__()
        check_pack(pack)
        self.pack = pack
        sizes = [pack * numel(shape), *[width] * depth]
        self.net = mlp([*sizes, out_dim], nn.LeakyReLU(0.2))
        if minibatch_discrimination:
            mbd = MinibatchDiscrimination(sizes[-1], minibatch_discrimination, minibatch_kernel_dim)
            self.net[-1] = nn.Sequential(mbd, nn.Linear(mbd.out_features, out_dim))
        if spectral_norm:
            apply_spectral_norm(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features (what feature matching compares), [N, width]."""
        h = x.flatten(1)
        for layer in self.net[:-1]:
            h = layer(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # = head(features(x))


class Encoder(Discriminator):
    """sample -> code: z_dim values, or 2 * z_dim (mean, log-variance) when stochastic."""

    def __init__(
        self, shape: Shape, z_dim: PositiveInt, width: PositiveInt = 256, depth: NonNegativeInt = 3, stochastic: bool = False
    ) -> None:
        super().__init__(shape, width, depth, out_dim=2 * z_dim if stochastic else z_dim)
        self.stochastic = stochastic
