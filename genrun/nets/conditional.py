"""Networks with a second input: a class label (cGAN, CVAE) or a latent code (BiGAN/ALI).

Each wraps a plain network built by a factory (a `_partial_` from the config), so the
conv and MLP architectures both gain the extra input without a copy of either.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

NetFactory = Callable[..., nn.Module]


class LabelledGenerator(nn.Module):
    """G(z, y) = net([z, embed(y)]): the label joins the noise (Mirza & Osindero 2014, sec. 3.2)."""

    def __init__(self, net: NetFactory, z_dim: int, num_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.net = net(z_dim=z_dim + embed_dim)
        self.shape = tuple(self.net.shape)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([z, self.embed(y)], 1))


class JointCritic(nn.Module):
    """f(x, s) = head([body(x), side(s)]): x and a side input meet in a hidden layer.

    BiGAN's D(x, z) (Donahue et al. 2017, app. C) for a code s = z; with a label s = y and
    `out_dim` > 1 the CVAE's encoder q(z | x, y) (Mirza & Osindero 2014's joint layer, sec.
    4.1; a cGAN critic uses ProjectionCritic below).
    """

    def __init__(self, body: NetFactory, side: nn.Module, side_dim: int, features: int = 128,
                 hidden: int = 256, out_dim: int = 1) -> None:
        super().__init__()
        self.body = body(out_dim=features)
        self.side = side
        self.head = nn.Sequential(nn.Linear(features + side_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out_dim))

    @classmethod
    def labelled(cls, body: NetFactory, num_classes: int, embed_dim: int, **kwargs) -> JointCritic:
        """A critic (or encoder) of (x, y) for labels y in [0, num_classes)."""
        return cls(body, nn.Embedding(num_classes, embed_dim), embed_dim, **kwargs)

    @classmethod
    def coded(cls, body: NetFactory, z_dim: int, embed_dim: int, **kwargs) -> JointCritic:
        """A critic of (x, z) for continuous codes z of z_dim values."""
        return cls(body, nn.Sequential(nn.Linear(z_dim, embed_dim), nn.LeakyReLU(0.2)), embed_dim, **kwargs)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        features = nn.functional.leaky_relu(self.body(x), 0.2)
        return self.head(torch.cat([features, self.side(s)], 1))


class ProjectionCritic(nn.Module):
    """D(x, y) = w . h(x) + embed(y) . h(x), h = body features (Miyato & Koyama 2018, eq. 3).

    The label's embedding projects the critic's features: on digits it conditions where a
    label joined in a hidden layer (JointCritic) is ignored (cGAN samples at chance, measured).
    """

    def __init__(self, body: NetFactory, num_classes: int, features: int = 128) -> None:
        super().__init__()
        self.body = body(out_dim=features)
        self.embed = nn.Embedding(num_classes, features)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)  # start near the unconditional critic
        self.head = nn.Linear(features, 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = nn.functional.leaky_relu(self.body(x), 0.2)
        return self.head(h) + (self.embed(y) * h).sum(1, keepdim=True)
