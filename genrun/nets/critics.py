"""Critic bodies (x -> features) with one signature for both architectures.

Families that add heads or side inputs to a critic (cGAN, BiGAN, InfoGAN, CVAE's encoder)
take a body factory, so `model.arch=conv|mlp` swaps the body and nothing else.
"""

from __future__ import annotations

from torch import nn

from genrun.nets import conv, mlp
from genrun.ranges import NonNegativeInt, PositiveInt, Shape


def conv_body(shape: Shape, out_dim: PositiveInt, width: PositiveInt = 64, norm: str = "batch",
              spectral_norm: bool = False, minibatch_discrimination: NonNegativeInt = 0) -> nn.Module:
    """DCGAN's discriminator trunk ending in `out_dim` features (raw, no activation)."""
    return conv.Discriminator(shape, width, norm, out_dim, spectral_norm=spectral_norm,
                              minibatch_discrimination=minibatch_discrimination)


def mlp_body(shape: Shape, out_dim: PositiveInt, width: PositiveInt = 256, depth: NonNegativeInt = 3, norm: str = "none",
             spectral_norm: bool = False, minibatch_discrimination: NonNegativeInt = 0) -> nn.Module:
    """The MLP critic ending in `out_dim` features.

    `norm` is accepted for the common signature: the MLP has no normalisation layer, which
    every objective allows (a gradient penalty only forbids batch coupling).
    """
    return mlp.Discriminator(shape, width, depth, out_dim, spectral_norm=spectral_norm,
                             minibatch_discrimination=minibatch_discrimination)
