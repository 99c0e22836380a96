"""Binarised images: each pixel a Bernoulli draw of its intensity, so that a Bernoulli decoder's
log-likelihood is a log-probability of the data and ELBOs in nats compare with the literature.

`static` draws once with a fixed seed (the training set becomes a fixed binary set); `dynamic`
draws afresh for every batch (Burda et al. 2016, sec. 5), from the run's RNG so a resumed run
draws the same pixels. Either way the held-out split is binarised once, so evaluations of one
run and of different runs see the same binary test set (and validation set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import Tensor
from torch.utils.data import Dataset

from genrun.data.bundle import DataBundle, bernoulli_pixels
from genrun.errors import GenrunError

MODES = ("none", "static", "dynamic")
HELD_OUT_SEED = 1  # the fixed draw of the held-out split (a static training set: seed 0)
VALIDATION_SEED = 2  # the fixed draw of the validation split


class BinarizedDataset(Dataset):
    """A dataset of (image, label) whose images are binarised once: example i from seed (seed, i)."""

    def __init__(self, data: Dataset, low: float, high: float, seed: int) -> None:
        self.data, self.low, self.high, self.seed = data, low, high, seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        x, y = self.data[i]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return bernoulli_pixels(x, self.low, self.high, g), y


def binarized_split(split: Tensor | Dataset | None, low: float, high: float, seed: int,
                    decode: Callable[[Tensor], Tensor]) -> Tensor | Dataset | None:
    """One split drawn once from `seed` (tensors at once, datasets example by example)."""
    if split is None:
        return None
    if isinstance(split, Tensor):  # uint8 pixels are scaled first (the drawn set is float)
        return bernoulli_pixels(decode(split), low, high, torch.Generator().manual_seed(seed))
    return BinarizedDataset(split, low, high, seed)


def binarize(data: DataBundle, mode: str, value_range: Sequence[float] | None) -> DataBundle:
    """The bundle with `dataset.binarize=mode` applied (dynamic: Batches draws each batch)."""
    if mode not in MODES:
        raise GenrunError(f"dataset.binarize={mode!r}: valid: {', '.join(MODES)}")
    if mode == "none":
        return data
    if value_range is None:
        raise GenrunError(f"dataset.binarize={mode} needs images with a bounded range; this dataset has none")
    low, high = (float(v) for v in value_range)
    decode = data.decode
    train = data.train if mode == "dynamic" else binarized_split(data.train, low, high, 0, decode)
    return replace(data, train=train, test=binarized_split(data.test, low, high, HELD_OUT_SEED, decode),
                   validation=binarized_split(data.validation, low, high, VALIDATION_SEED, decode), binarize=mode,
                   value_range=(low, high), pixels=data.pixels if mode == "dynamic" else None)
