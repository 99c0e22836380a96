"""PixelCNN (van den Oord et al. 2016a) and its gated variant (van den Oord et al. 2016b): the
distribution of each pixel given the pixels before it in raster order, and of each colour given
the colours before it at the same pixel (R, then G, then B).

The plain net is a 7x7 convolution of mask type A and residual blocks of type-B convolutions
(sec. 3.4-3.5); its receptive field has a blind spot to the upper right. The gated net's vertical
stack sees every pixel of the rows above within its reach and its horizontal stack the pixels to
the left, joined so that no pixel is missed (2016b, sec. 2.2). Both output `params` numbers per
value of each colour: [B, C, params, H, W] (1 logit for binarised pixels, 256 logits, or the
parameters of a discretised logistic mixture: genrun.pipelines.pixelcnn picks).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genrun.nets.masks import causal_conv, horizontal_conv, shift_down, vertical_conv
from genrun.ranges import NonNegativeInt, PositiveInt, Shape


def gate(x: Tensor) -> Tensor:
    """tanh(a) * sigmoid(b) for x = [a, b] along the channels (2016b, eq. 2)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class ResidualMaskedBlock(nn.Module):
    """2016a's residual block: ReLU, 1x1 (2h -> h), ReLU, k x k type B (h -> h), ReLU, 1x1 (h -> 2h),
    plus the input; every convolution masked by colour."""

    def __init__(self, width: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), causal_conv(2 * width, width, 1, "B", groups),
            nn.ReLU(), causal_conv(width, width, kernel, "B", groups),
            nn.ReLU(), causal_conv(width, 2 * width, 1, "B", groups))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class GatedLayer(nn.Module):
    """One layer of the gated PixelCNN: a vertical and a horizontal stack (2016b, fig. 2)."""

    def __init__(self, channels: int, width: int, kernel: int, mask_type: str, groups: int, residual: bool) -> None:
        super().__init__()
        self.vertical = vertical_conv(channels, 2 * width, kernel)
        self.vertical_to_horizontal = nn.Conv2d(2 * width, 2 * width, 1)  # reads rows above only (shifted)
        self.horizontal = horizontal_conv(channels, 2 * width, kernel, mask_type, groups)
        self.horizontal_out = causal_conv(width, width, 1, "B", groups)
        self.residual = residual

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        v_features = self.vertical(v)
        h_features = self.horizontal(h) + self.vertical_to_horizontal(shift_down(v_features))
        h_out = self.horizontal_out(gate(h_features))
        return gate(v_features), h_out + h if self.residual else h_out


class PixelCNN(nn.Module):
    """[B, C, H, W] inputs in [-1, 1] -> [B, C, params, H, W]; output (i, j, c) reads only the
    pixels before (i, j) and the colours before c at (i, j).

    `gated`: van den Oord et al. 2016b's stacks (first kernel `first_kernel`, then `kernel`), else
    2016a's residual net. `layers` blocks or gated layers of `width` maps, then two 1x1 layers of
    `head` maps (ReLU) to the output.
    """

    def __init__(self, shape: Shape, params: PositiveInt, width: PositiveInt = 64, layers: NonNegativeInt = 7,
                 gated: bool = True, first_kernel: PositiveInt = 7, kernel: PositiveInt = 3,
                 head: PositiveInt = 256) -> None:
        super().__init__()
        self.shape, self.params, self.gated = tuple(int(s) for s in shape), params, gated
        channels = self.shape[0]
        if gated:
            self.first = GatedLayer(channels, width, first_kernel, "A", channels, residual=False)
            self.stack = nn.ModuleList(GatedLayer(width, width, kernel, "B", channels, residual=True)
                                       for _ in range(layers))
            top = width
        else:
            self.first = causal_conv(channels, 2 * width, first_kernel, "A", channels)
            self.stack = nn.ModuleList(ResidualMaskedBlock(width, kernel, channels) for _ in range(layers))
            top = 2 * width
        self.head = nn.Sequential(nn.ReLU(), causal_conv(top, head, 1, "B", channels),
                                  nn.ReLU(), causal_conv(head, channels * params, 1, "B", channels))

    def forward(self, x: Tensor) -> Tensor:
        if self.gated:
            v, h = self.first(x, x)
            for layer in self.stack:
                v, h = layer(v, h)
        else:
            h = self.first(x)
            for block in self.stack:
                h = block(h)
        out = self.head(h)
        return out.reshape(len(x), self.shape[0], self.params, *out.shape[2:])  # channels_last on CUDA: no view
