"""Discriminator building blocks from the GAN-stabilisation literature."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genrun.errors import GenrunError

NORMALISED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def apply_spectral_norm(net: nn.Module) -> nn.Module:
    """Miyato et al. 2018: every Linear/Conv weight divided by its largest singular value.

    One power iteration per training forward; its vectors u, v are buffers, so checkpoints
    carry them and a resumed run continues bit-exactly. Call after any weight init.
    """
    for module in list(net.modules()):
        if isinstance(module, NORMALISED):
            spectral_norm(module)
    return net


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, sec. 3.2: o(x_i)_b = sum_j exp(-||M_i,b - M_j,b||_L1), M = f(x) T.

    Appends `kernels` (B) closeness statistics of each sample to the rest of its batch to its
    `in_features` (A) features, so the discriminator can see a batch that lacks variety.
    The sum runs over every j, i included (exp(0) = 1), as in the paper.
    """

    def __init__(self, in_features: int, kernels: int, kernel_dim: int = 5) -> None:
        super().__init__()
        if kernels < 1 or kernel_dim < 1:
            raise GenrunError(
                f"minibatch_discrimination={kernels}, minibatch_kernel_dim={kernel_dim}: both must be >= 1"
            )
        self.kernels, self.kernel_dim = kernels, kernel_dim
        # the authors' code draws T from N(0, 0.05)
        self.T = nn.Parameter(torch.randn(in_features, kernels, kernel_dim) * 0.05)

    @property
    def out_features(self) -> int:
        return self.T.shape[0] + self.kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (x @ self.T.flatten(1)).view(-1, self.kernels, self.kernel_dim)  # [N, B, C]
        # explicit differences, not torch.cdist: its double backward (gradient penalties) is
        # missing from the torch versions we support (>= 2.4)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # [N, N, B]
        return torch.cat([x, torch.exp(-l1).sum(1)], dim=1)
