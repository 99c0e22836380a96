"""Masks: which inputs an output may see. Binary masks of the coupling layers (Real NVP's
checkerboard and channel-wise ones, NICE's alternating split) and the causal masks of PixelCNN's
convolutions (van den Oord et al. 2016a, sec. 3.4), with the convolution that applies them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrun.errors import GenrunError

MASK_TYPES = ("A", "B")


def checkerboard_mask(height: int, width: int, parity: int) -> Tensor:
    """[1, 1, H, W]: 1 where (i + j + parity) is even (Dinh et al. 2017, fig. 3, left)."""
    i, j = torch.arange(height).view(-1, 1), torch.arange(width).view(1, -1)
    return ((i + j + parity) % 2 == 0).float().view(1, 1, height, width)


def channel_mask(channels: int, parity: int) -> Tensor:
    """[1, C, 1, 1]: 1 on the first half of the channels (parity 0) or the second (fig. 3, right)."""
    first = torch.arange(channels) < channels // 2
    return (first if parity == 0 else ~first).float().view(1, channels, 1, 1)


def alternating_mask(dims: int, parity: int) -> Tensor:
    """[1, D]: 1 on the even (parity 0) or odd indices of a flattened example (NICE, sec. 5.1)."""
    return (torch.arange(dims) % 2 == parity).float().view(1, dims)


def colour_groups(channels: int, groups: int, halves: bool = False) -> Tensor:
    """The colour each of `channels` feature maps belongs to: `groups` contiguous blocks (R, G, B);
    with `halves`, the two halves of the maps alike (a gated unit multiplies map c by map c + C/2)."""
    if halves:
        return colour_groups(channels // 2, groups).repeat(2)
    if channels < groups:
        raise GenrunError(f"{channels} feature maps cannot hold {groups} colours; use a width >= {groups}")
    return torch.arange(channels) * groups // channels


def causal_mask(out_groups: Tensor, in_groups: Tensor, kernel: tuple[int, int], mask_type: str,
                centre: tuple[int, int] | None = None) -> Tensor:
    """[out, in, kh, kw] weights mask of a raster-order convolution whose output sits at `centre`
    of the kernel (default: its middle).

    Rows above the centre and the centre row left of it are seen; at the centre, an output of
    colour g sees input colours < g (type A: the first layer, which must not see the pixel it
    predicts) or <= g (type B: later layers, whose inputs at the centre already exclude it).
    """
    if mask_type not in MASK_TYPES:
        raise GenrunError(f"mask type {mask_type!r}: valid: {', '.join(MASK_TYPES)}")
    kh, kw = kernel
    ci, cj = centre if centre is not None else (kh // 2, kw // 2)
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :ci] = 1
    mask[:, :, ci, :cj] = 1
    seen = out_groups.view(-1, 1) > in_groups.view(1, -1) if mask_type == "A" else \
        out_groups.view(-1, 1) >= in_groups.view(1, -1)
    mask[:, :, ci, cj] = seen.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A convolution whose weights are multiplied by a fixed mask at every forward, with its own
    zero padding (left, right, top, bottom): 'same' by default, one-sided for PixelCNN's stacks."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], mask: Tensor | None = None,
                 padding: tuple[int, int, int, int] | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel)
        kh, kw = kernel
        self.pad = padding if padding is not None else (kw // 2, kw // 2, kh // 2, kh // 2)
        self.register_buffer("mask", mask if mask is not None else torch.ones_like(self.weight),
                             persistent=False)  # derived from the shape, not saved

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(F.pad(x, self.pad), self.weight * self.mask, self.bias)


def causal_conv(in_channels: int, out_channels: int, kernel: int | tuple[int, int], mask_type: str,
                groups: int = 1, gated_out: bool = False) -> MaskedConv2d:
    """A 'same' masked convolution of type A or B over `groups` colours (1 for grey images);
    `gated_out`: its output feeds a gated unit (colours assigned to both halves alike)."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    mask = causal_mask(colour_groups(out_channels, groups, gated_out), colour_groups(in_channels, groups), kernel,
                       mask_type)
    return MaskedConv2d(in_channels, out_channels, kernel, mask)


def vertical_conv(in_channels: int, out_channels: int, kernel: int) -> MaskedConv2d:
    """Gated PixelCNN's vertical stack (van den Oord et al. 2016b, sec. 2.2): a (k//2 + 1) x k
    kernel whose output at row i reads rows i - k//2 .. i, every column: no blind spot. It sees its
    own row, so the horizontal stack reads it one row lower (`shift_down`)."""
    return MaskedConv2d(in_channels, out_channels, (kernel // 2 + 1, kernel),
                        padding=(kernel // 2, kernel // 2, kernel // 2, 0))


def horizontal_conv(in_channels: int, out_channels: int, kernel: int, mask_type: str,
                    groups: int = 1) -> MaskedConv2d:
    """Gated PixelCNN's horizontal stack: a 1 x (k//2 + 1) kernel over the pixels left of the
    output and the output's own position, masked there by colour (type A or B); its output
    feeds a gated unit."""
    width = kernel // 2 + 1
    mask = causal_mask(colour_groups(out_channels, groups, halves=True), colour_groups(in_channels, groups),
                       (1, width), mask_type, centre=(0, width - 1))
    return MaskedConv2d(in_channels, out_channels, (1, width), mask, padding=(kernel // 2, 0, 0, 0))


def shift_down(x: Tensor) -> Tensor:
    """Row i takes row i - 1's values (row 0 zeros): the vertical stack as the horizontal one may read it."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]
