"""DCGAN-style convolutional networks (Radford et al. 2016) for square images of 4 * 2^k px.

The generator upsamples a 4x4 map by stride-2 transposed convolutions (BatchNorm + ReLU);
the discriminator mirrors it with stride-2 convolutions and LeakyReLU 0.2.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genrun.errors import GenrunError
from genrun.nets.common import OutputRange, check_pack, dcgan_init
from genrun.nets.layers import MinibatchDiscrimination, apply_spectral_norm
from genrun.ranges import Bounds, NonNegativeInt, PositiveInt, Shape


def num_doublings(shape: Shape) -> int:
    """How many stride-2 layers lie between a 4x4 map and the image; checks the size."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise GenrunError(f"conv nets need square images [C, H, H], got shape {list(shape)}")
    size = shape[1]
    k = int(round(math.log2(size / 4))) if size >= 8 else 0
    if size < 8 or 4 * 2**k != size:
        raise GenrunError(f"image_size={size}: conv nets need 4 * 2^k pixels, e.g. 16, 32 or 64")
    return k


def norm_layer(kind: str, channels: PositiveInt) -> nn.Module:
    """The critic's normalisation: batch (DCGAN), layer (per sample, for gradient penalties),
    instance (per sample and channel, CycleGAN's; no learned scale, as in its code) or none."""
    layers = {"batch": lambda: nn.BatchNorm2d(channels), "layer": lambda: nn.GroupNorm(1, channels),
              "instance": lambda: nn.InstanceNorm2d(channels), "none": nn.Identity}
    if kind not in layers:
        raise GenrunError(f"norm={kind!r} is not a known normalisation; valid: {', '.join(layers)}")
    return layers[kind]()


class Generator(nn.Module):
    """z -> image: ConvT(4x4) then stride-2 ConvT + BatchNorm + ReLU, output in the data range."""

    def __init__(self, z_dim: PositiveInt, shape: Shape, width: PositiveInt = 64, out_range: Bounds = None) -> None:
        super().__init__()
        k = num_doublings(shape)
        self.shape = tuple(shape)
        chans = [width * 2 ** (k - 1 - i) for i in range(k)]  # e.g. 256, 128, 64 for 32 px
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, chans[0], 4, 1, 0, bias=False), nn.BatchNorm2d(chans[0]), nn.ReLU(True)
        ]
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers.append(nn.ConvTranspose2d(chans[-1], shape[0], 4, 2, 1))
        self.net = nn.Sequential(*layers)
        self.out = OutputRange(out_range)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(z.view(z.shape[0], -1, 1, 1)))


def conv_trunk(shape: Shape, width: PositiveInt, norm: str, pack: PositiveInt = 1) -> tuple[nn.Sequential, int]:
    """Stride-2 convolutions down to a 4x4 map; returns the trunk and its channel count.

    `pack` samples arrive stacked along the channels (PacGAN), so the first layer takes pack x C.
    """
    k = num_doublings(shape)
    chans = [width * 2**i for i in range(k)]
    layers: list[nn.Module] = [nn.Conv2d(pack * shape[0], chans[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for a, b in zip(chans[:-1], chans[1:], strict=True):
        layers += [nn.Conv2d(a, b, 4, 2, 1, bias=norm == "none"), norm_layer(norm, b), nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*layers), chans[-1]


class Discriminator(nn.Module):
    """image -> one logit (or `out_dim` values); no norm on the first layer, as in DCGAN.

    `features` is the trunk's 4x4 map, `head` turns it into the output. Options for GAN
    training: `pack` images judged at once (PacGAN, stacked along the channels),
    `spectral_norm` on every layer, `minibatch_discrimination` kernels on the flattened map
    before a linear head (see genrun.nets.layers).
    """

    def __init__(
        self,
        shape: Shape,
        width: PositiveInt = 64,
        norm: str = "batch",
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
        self.trunk, chans = conv_trunk(shape, width, norm, pack)
        if minibatch_discrimination:
            mbd = MinibatchDiscrimination(chans * 16, minibatch_discrimination, minibatch_kernel_dim)
            self.head = nn.Sequential(nn.Flatten(), mbd, nn.Linear(mbd.out_features, out_dim))
        else:
            self.head = nn.Conv2d(chans, out_dim, 4, 1, 0)
        self.apply(dcgan_init)
        if spectral_norm:
            apply_spectral_norm(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features (what feature matching compares): the trunk's [N, C, 4, 4] map."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)).flatten(1)


class Encoder(Discriminator):
    """image -> code: z_dim values, or 2 * z_dim (mean, log-variance) when stochastic."""

    def __init__(
        self, shape: Shape, z_dim: PositiveInt, width: PositiveInt = 64, norm: str = "batch", stochastic: bool = False
    ) -> None:
        super().__init__(shape, width, norm, out_dim=2 * z_dim if stochastic else z_dim)
        self.stochastic = stochastic
