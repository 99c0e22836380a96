"""Bounded slices of a dataset's splits for end-of-run metrics, and chunked evaluation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genrun.data.bundle import Batch, DataBundle

EVAL_N = 5000  # examples per split at most: keeps metrics fast on large datasets
CHUNK = 512


def split_batch(data: DataBundle, split: str, device: torch.device, n: int = EVAL_N) -> Batch | None:
    """The first n examples of a split on `device`; None when the dataset has no such split."""
    if (data.train if split == "train" else data.test) is None:
        return None
    return {k: v.to(device) for k, v in data.examples(n, split).items()}


def has_labels(batch: Batch | None) -> bool:
    """True when the batch carries at least two distinct class labels (-1 means unlabelled)."""
    if batch is None or "y" not in batch:
        return False
    y = batch["y"]
    return bool((y >= 0).all()) and len(torch.unique(y)) >= 2


def in_chunks(fn: Callable[[Batch], Tensor], batch: Batch, size: int = CHUNK) -> Tensor:
    """fn over `batch` in chunks of `size` examples (bounded memory), concatenated."""
    n = len(batch["x"])
    return torch.cat([fn({k: v[i:i + size] for k, v in batch.items()}) for i in range(0, n, size)])
