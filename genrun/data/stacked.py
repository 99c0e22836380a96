"""Stacked MNIST (Metz et al. 2017; PacGAN, VEEGAN): three MNIST digits as an image's three
channels, so the data has 1,000 modes (d0 d1 d2), each a product of three digit classes."""

from __future__ import annotations

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.data.vision import torchvision_dataset
from genrun.errors import GenrunError
from genrun.ranges import OpenUnit, PositiveInt, Seed


def stack(images: Tensor, labels: Tensor, n: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
    """n images [n, 3, H, W] whose channels are digits drawn independently and uniformly from
    `images` [N, 1, H, W]; labels d0 * 100 + d1 * 10 + d2 (channel 0 is the hundreds digit)."""
    picks = torch.randint(len(images), (n, 3), generator=rng)
    x = images[picks.flatten(), 0].view(n, 3, *images.shape[-2:])
    y = (labels[picks] * torch.tensor([100, 10, 1])).sum(1)
    return x.contiguous(), y


def stacked_mnist(root: str, download: bool = False, image_size: PositiveInt = 32, size: PositiveInt = 128_000,
                  test_size: PositiveInt = 10_000, train_split: str = "train", held_out: OpenUnit = 0.1,
                  seed: Seed = 0) -> DataBundle:
    """`size` training stacks drawn from MNIST's training digits and `test_size` held-out stacks
    from its held-out ones (the test split, or with train_split=test the held-out part of it),
    as uint8 in memory, scaled to [-1, 1] per batch like the other image sets."""
    if size < 1 or test_size < 1:
        raise GenrunError(f"dataset.size={size} and dataset.test_size={test_size} must be positive")
    digits = torchvision_dataset("MNIST", root, download, image_size, 1, train_split, held_out)
    g = torch.Generator().manual_seed(seed)
    x, y = stack(digits.train, digits.labels, size, g)
    x_test, y_test = stack(digits.test, digits.test_labels, test_size, g)
    return DataBundle(train=x, labels=y, test=x_test, test_labels=y_test, pixels=digits.pixels)
