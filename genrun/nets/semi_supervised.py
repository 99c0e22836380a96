"""The semi-supervised GAN's critic on MNIST (Salimans et al. 2016, sec. 5.1; the authors' code,
openai/improved-gan, train_mnist_feature_matching.py): an MLP of 1000-500-250-250-250 ReLU units with
weight normalisation and additive Gaussian noise (std 0.3 on the input, 0.5 after every hidden
layer, in training only) ending in K class logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as with_weight_norm

from genrun.nets.common import numel
from genrun.ranges import NonNegative, PositiveInt, Range, Shape

Widths = Annotated[Sequence[int], Range(1, integer=True)]


class GaussianNoise(nn.Module):
    """x + N(0, std^2) in training, x in eval mode (Lasagne's GaussianNoiseLayer)."""

    def __init__(self, std: NonNegative) -> None:
        super().__init__()
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + self.std * torch.randn_like(x)


class NoisyCritic(nn.Module):
    """x -> K class logits. `features(x)` is the last hidden layer's activations (what the generator's
    feature matching compares, as in the authors' code); `forward` adds that layer's noise and the
    linear head. Noise layers are off in eval mode, so test-time predictions are deterministic."""

    def __init__(self, shape: Shape, num_classes: PositiveInt, widths: Widths = (1000, 500, 250, 250, 250),
                 input_noise: NonNegative = 0.3, hidden_noise: NonNegative = 0.5, weight_norm: bool = True) -> None:
        super().__init__()
        norm = with_weight_norm if weight_norm else (lambda layer: layer)
        sizes = [numel(shape), *widths]
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if i:
                layers.append(GaussianNoise(hidden_noise))
            layers += [norm(nn.Linear(a, b)), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(GaussianNoise(hidden_noise), norm(nn.Linear(sizes[-1], num_classes)))

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))
