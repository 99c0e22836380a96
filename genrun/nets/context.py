"""The context encoder (Pathak et al. 2016, sec. 3.1), scaled to small images, and its critic.

Encoder: 4x4 stride-2 convolutions (LeakyReLU 0.2, batch norm after the first) down to m maps
of n x n, with n >= 4 (7x7 at 28 px, 4x4 at 32 px). The channel-wise fully connected layer links
every location of each map to every location of the same map (m separate n^2 x n^2 layers, m n^4
weights instead of a full layer's m^2 n^4), then a stride-1 convolution mixes the channels. The
decoder mirrors the encoder with transposed convolutions (ReLU, batch norm) to the whole image.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genrun.errors import GenrunError
from genrun.nets.common import OutputRange, dcgan_init
from genrun.nets.conv import norm_layer
from genrun.nets.layers import apply_spectral_norm
from genrun.ranges import Bounds, PositiveInt, UnitInterval

SMALLEST_MAP = 4  # the bottleneck's maps keep at least 4 x 4 locations


def encoder_depth(size: int, depth: int | None = None) -> int:
    """Stride-2 layers down to the bottleneck: `depth`, checked, or (None) every halving that
    keeps an even size and a map of at least SMALLEST_MAP px."""
    most, side = 0, size
    while side % 2 == 0 and side // 2 >= SMALLEST_MAP:
        side //= 2
        most += 1
    if most == 0:
        raise GenrunError(f"the task's {size} px images are too small or odd-sized to encode (need an even size "
                          f">= {2 * SMALLEST_MAP})")
    if depth is None:
        return most
    if not 1 <= depth <= most:
        raise GenrunError(f"model.generator.depth={depth}: valid for the task's {size} px images: 1 to {most}")
    return depth


def strided_encoder(in_channels: int, width: int, depth: int, norm: str) -> tuple[nn.Sequential, int]:
    """4x4 stride-2 convolutions, channels width x 1, 2, 4, 8, 8, ...; returns the layers and their channels."""
    layers: list[nn.Module] = []
    channels = in_channels
    for i in range(depth):
        out = width * 2 ** min(i, 3)
        layers += [nn.Conv2d(channels, out, 4, 2, 1, bias=i == 0 or norm == "none")]
        layers += [nn.LeakyReLU(0.2)] if i == 0 else [norm_layer(norm, out), nn.LeakyReLU(0.2)]
        channels = out
    return nn.Sequential(*layers), channels


class ChannelwiseFC(nn.Module):
    """[N, m, n, n] -> [N, m, n, n]: each channel's n^2 values through its own fully connected layer."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        area = side * side
        bound = 1 / math.sqrt(area)
        self.weight = nn.Parameter(torch.empty(channels, area, area).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(channels, area))

    def forward(self, x: Tensor) -> Tensor:
        n, m, h, w = x.shape
        flat = x.reshape(n, m, h * w)
        out = torch.einsum("bci,cio->bco", flat, self.weight) + self.bias
        return out.reshape(n, m, h, w)


class ContextEncoder(nn.Module):
    """image with a hole [in_channels, S, S] -> the whole image [out_channels, S, S]."""

    def __init__(self, in_channels: PositiveInt, out_channels: PositiveInt, size: PositiveInt, width: PositiveInt = 64,
                 depth: PositiveInt | None = None, dropout: UnitInterval = 0.0, norm: str = "batch",
                 out_range: Bounds = (-1.0, 1.0)) -> None:
        super().__init__()
        self.depth = encoder_depth(size, depth)
        self.encoder, channels = strided_encoder(in_channels, width, self.depth, norm)
        side = size // 2**self.depth
        self.bottleneck = nn.Sequential(ChannelwiseFC(channels, side), nn.Dropout(dropout),
                                        nn.Conv2d(channels, channels, 1), norm_layer(norm, channels), nn.ReLU())
        layers: list[nn.Module] = []
        for i in range(self.depth - 1, -1, -1):
            out = out_channels if i == 0 else width * 2 ** min(i - 1, 3)
            layers.append(nn.ConvTranspose2d(channels, out, 4, 2, 1, bias=i == 0 or norm == "none"))
            layers += [OutputRange(out_range)] if i == 0 else [norm_layer(norm, out), nn.ReLU()]
            channels = out
        self.decoder = nn.Sequential(*layers)
        for module in (self.encoder, self.decoder, self.bottleneck[2:]):
            module.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.bottleneck(self.encoder(x)))


class ConvCritic(nn.Module):
    """The context encoder's adversarial critic (DCGAN-like, Pathak et al. 2016): the same strided
    encoder, then one linear logit."""

    def __init__(self, in_channels: PositiveInt, size: PositiveInt, width: PositiveInt = 64,
                 depth: PositiveInt | None = None, norm: str = "batch", spectral_norm: bool = False) -> None:
        super().__init__()
        depth = encoder_depth(size, depth)
        self.body, channels = strided_encoder(in_channels, width, depth, norm)
        side = size // 2**depth
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, 1))
        self.apply(dcgan_init)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))
