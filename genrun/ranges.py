"""Valid ranges of numeric settings: the `Range` type, and the ranges most parameters use as
annotated types (`width: PositiveInt`), read by genrun.schema before any work starts.

Kept free of genrun's other modules, so that every module can declare its ranges here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any


@dataclass(frozen=True)
class Range:
    """Numbers in [low, high] (either end open or absent); `integer` asks for whole numbers.

    Applies to each element of a list value (e.g. Adam's betas, a shape)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and (not isinstance(value, int)):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.integer and self.low == 1 and self.high is None:
            return "a positive integer (>= 1)"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return kind


# The ranges the code base uses most, as types for constructor parameters.
PositiveInt = Annotated[int, Range(1, integer=True)]
NonNegativeInt = Annotated[int, Range(0, integer=True)]
Positive = Annotated[float, Range(0, low_open=True)]
NonNegative = Annotated[float, Range(0)]
UnitInterval = Annotated[float, Range(0, 1)]
Decay = Annotated[float, Range(0, 1, high_open=True)]  # EMA decays, Adam's betas: [0, 1)
Real = Annotated[float, Range()]  # any finite number
Seed = Annotated[int, Range(0, integer=True)]
Shape = Annotated[int | Sequence[int], Range(1, integer=True)]  # sizes of a tensor's dimensions
Bounds = Annotated[Sequence[float] | None, Range()]  # a value range (low, high), or none
Correlation = Annotated[float, Range(-1, 1, low_open=True, high_open=True)]
OpenUnit = Annotated[float, Range(0, 1, low_open=True, high_open=True)]
Rate = Annotated[float, Range(0, 1, low_open=True)]  # a moving average's rate: (0, 1]
