"""scikit-learn's bundled 8x8 handwritten digits: real images that need no network."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genrun.data.bundle import DataBundle
from genrun.errors import GenrunError
from genrun.ranges import Decay, PositiveInt


def load_digits(image_size: PositiveInt = 16, test_fraction: Decay = 0.2) -> DataBundle:
    """The 1,797 digits as [N, 1, image_size, image_size] in [-1, 1], with labels.

    A fixed shuffled `test_fraction` is held out for end-of-run metrics (linear probes,
    held-out reconstruction and ELBO); the rest is the training set.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    if image_size < 8:
        raise GenrunError(f"dataset.image_size={image_size}: digits are 8x8; use 8 or more (e.g. 16, 32)")
    data = sk_load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values 0..16
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.clamp(0, 1) * 2 - 1
    y = torch.tensor(data.target, dtype=torch.long)
    if not 0 <= test_fraction < 1:
        raise GenrunError(f"dataset.source.test_fraction={test_fraction}: must be in [0, 1)")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return DataBundle(train=x[train].contiguous(), labels=y[train], test=x[test].contiguous(), test_labels=y[test])
