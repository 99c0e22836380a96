"""The U-Net generator of pix2pix (Isola et al. 2017, app. 6.1.1; Ronneberger et al. 2015), sized from the image.

Encoder C64-C128-C256-C512-C512-...: 4x4 stride-2 convolutions, LeakyReLU 0.2, a norm after
every layer but the first and the innermost; the decoder mirrors it with 4x4 stride-2 transposed
convolutions and ReLU, each layer's input the previous output concatenated with the encoder
layer of the same size (the skip connections), dropout 0.5 in the first three decoder layers
(the paper's only noise), and the data range at the end. The depth is set by the image size:
`depth=null` halves the image as many times as it divides by 2 (5 times at 32 px: to 1x1, as
the paper's 8 at 256 px; twice at 28 px: to 7x7); a depth the size does not allow is an error.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genrun.errors import GenrunError
from genrun.nets.common import OutputRange, dcgan_init
from genrun.nets.conv import norm_layer
from genrun.ranges import Bounds, PositiveInt, UnitInterval

DROPOUT_LAYERS = 3  # decoder layers with dropout, innermost first (the paper's CD512 x 3)


def halvings(size: int) -> int:
    """How many times a size divides by two."""
    k = 0
    while size % 2 == 0 and size > 1:
        size //= 2
        k += 1
    return k


def unet_depth(size: int, depth: int | None) -> int:
    """The U-Net's number of down-samplings: `depth`, checked against the image size, or (None)
    every halving the size allows."""
    most = halvings(size)
    if most == 0:
        raise GenrunError(f"a U-Net halves the image at least once: the task's {size} px images are odd-sized")
    if depth is None:
        return most
    if not 1 <= depth <= most:
        raise GenrunError(f"model.generator.depth={depth}: the U-Net halves the image {depth} times, so its size "
                          f"must divide by {2**depth}; the task's images are {size} px (valid depths here: 1 to "
                          f"{most}, or null for {most})")
    return depth


class UNet(nn.Module):
    """image [in_channels, S, S] -> image [out_channels, S, S] through `depth` halvings and skips."""

    def __init__(self, in_channels: PositiveInt, out_channels: PositiveInt, size: PositiveInt, width: PositiveInt = 64,
                 depth: PositiveInt | None = None, norm: str = "batch", dropout: UnitInterval = 0.5,
                 out_range: Bounds = (-1.0, 1.0)) -> None:
        super().__init__()
        self.depth = unet_depth(size, depth)
        chans = [width * 2 ** min(i, 3) for i in range(self.depth)]  # 64, 128, 256, 512, 512, ...
        self.down = nn.ModuleList()
        for i, c in enumerate(chans):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_channels if i == 0 else chans[i - 1], c, 4, 2, 1, bias=norm != "batch"))
            if 0 < i < self.depth - 1:
                layers.append(norm_layer(norm, c))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in range(self.depth):  # up[i] undoes down[i]
            inner = chans[i] if i == self.depth - 1 else 2 * chans[i]
            if i == 0:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(inner, out_channels, 4, 2, 1),
                                             OutputRange(out_range)))
                continue
            layers = [nn.ReLU(), nn.ConvTranspose2d(inner, chans[i - 1], 4, 2, 1, bias=norm != "batch"),
                      norm_layer(norm, chans[i - 1])]
            if dropout > 0 and i >= self.depth - DROPOUT_LAYERS:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = self.up[-1](skips[-1])
        for i in range(self.depth - 2, -1, -1):
            x = self.up[i](torch.cat([skips[i], x], 1))
        return x
