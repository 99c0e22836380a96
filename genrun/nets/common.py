"""Small pieces shared by the network files."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from genrun.errors import GenrunError


class OutputRange(nn.Module):
    """Squash outputs into the data's range (tanh, rescaled) so G can only emit valid data."""

    def __init__(self, out_range: Sequence[float] | None) -> None:
        super().__init__()
        low, high = out_range if out_range is not None else (None, None)
        self.bounded = out_range is not None
        self.center = 0.0 if low is None else (high + low) / 2
        self.half = 1.0 if low is None else (high - low) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.bounded:
            return x
        return self.center + self.half * torch.tanh(x)


def check_pack(pack: int) -> None:
    """PacGAN's m (Lin et al. 2018): how many samples a discriminator judges at once."""
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise GenrunError(f"pack={pack!r}: must be an integer >= 1 (1 = no packing)")


def numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
