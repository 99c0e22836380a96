"""Coupling layers (NICE, Dinh et al. 2014; Real NVP, Dinh et al. 2017) and the networks that
compute their shift and log-scale.

A coupling keeps the inputs its binary mask b selects and transforms the others given them:
y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x)), so the Jacobian is triangular and
log |det| = sum((1 - b) * s). Additive couplings (NICE) have s = 0. Every layer of a flow maps
x -> (y, log |det dy/dx| per example) and has `inverse(y) -> x`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from genrun.ranges import NonNegativeInt, PositiveInt

Norm = Callable[[int], nn.Module]  # channels -> a normalisation layer of the conditioner nets


def wide(t: Tensor) -> Tensor:
    """t in float32 when autocast made it bf16 or fp16 (float32 and float64 stay as they are)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class Coupling(nn.Module):
    """An affine (`scale_shape` given) or additive (None) coupling layer with a fixed mask.

    The log-scale is tanh-bounded and rescaled by a learned factor per channel (or per dimension),
    s = scale * tanh(h) (Dinh et al. 2017, sec. 4.1: keeps early training stable), and computed in
    at least float32 whatever the autocast precision, as is the log-determinant.
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, scale_shape: tuple[int, ...] | None) -> None:
        super().__init__()
        self.register_buffer("mask", mask, persistent=False)  # derived from the shape, not saved
        self.conditioner = conditioner
        self.affine = scale_shape is not None
        self.scale = nn.Parameter(torch.ones(scale_shape)) if self.affine else None

    def shift_and_log_scale(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        """t and s for the changed inputs (zero where the mask keeps the input)."""
        h = wide(self.conditioner(kept))
        free = 1 - self.mask
        if not self.affine:
            return h * free, torch.zeros_like(h)
        raw_s, t = h.chunk(2, dim=1)
        return t * free, self.scale * torch.tanh(raw_s) * free

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        kept = x * self.mask
        t, s = self.shift_and_log_scale(kept)
        y = kept + (1 - self.mask) * (x * torch.exp(s) + t)
        return y, s.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        kept = y * self.mask
        t, s = self.shift_and_log_scale(kept)
        return kept + (1 - self.mask) * ((y - t) * torch.exp(-s))


class ResidualBlock(nn.Module):
    """Pre-activation residual block: norm, ReLU, 3x3 conv, norm, ReLU, 3x3 conv, plus the input."""

    def __init__(self, width: int, norm: Norm) -> None:
        super().__init__()
        self.body = nn.Sequential(norm(width), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                                  norm(width), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResidualConditioner(nn.Module):
    """Real NVP's s and t network for images: a 3x3 conv to `width` maps, `blocks` residual blocks,
    norm, ReLU and a 3x3 conv to 2 x channels (s and t). The last conv starts at zero, so each
    coupling starts as the identity (as Glow does, Kingma & Dhariwal 2018)."""

    def __init__(self, channels: PositiveInt, width: PositiveInt, blocks: NonNegativeInt, norm: Norm,
                 outputs: int = 2) -> None:
        super().__init__()
        last = nn.Conv2d(width, outputs * channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1),
                                 *[ResidualBlock(width, norm) for _ in range(blocks)],
                                 norm(width), nn.ReLU(), last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MLPConditioner(nn.Module):
    """NICE's coupling function m: `depth` hidden ReLU layers of `width` units over the flattened
    example (the kept half; the other half is zero), out to a shift of every dimension."""

    def __init__(self, dims: PositiveInt, width: PositiveInt, depth: PositiveInt) -> None:
        super().__init__()
        sizes = [dims, *[width] * depth]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(width, dims)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
