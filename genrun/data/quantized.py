"""Quantised images: every pixel one of `levels` evenly spaced values, for generators of discrete values
(the discrete BGAN, Hjelm et al. 2018, trains on quantised images)."""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.data.digits import load_digits
from genrun.errors import GenrunError
from genrun.ranges import PositiveInt


def quantize(x: Tensor, levels: int, low: float = -1.0, high: float = 1.0) -> Tensor:
    """Each value moved to the nearest of `levels` evenly spaced values of [low, high]."""
    step = (high - low) / (levels - 1)
    return low + ((x.clamp(low, high) - low) / step).round() * step


def quantized_digits(image_size: PositiveInt = 16, levels: PositiveInt = 4) -> DataBundle:
    """scikit-learn's digits at `image_size` px in [-1, 1], quantised to `levels` values."""
    if levels < 2:
        raise GenrunError(f"dataset.levels={levels}: quantised images need at least 2 levels")
    data = load_digits(image_size)
    return replace(data, train=quantize(data.train, levels), test=quantize(data.test, levels))
