"""The reconstruction terms of the translation families, each a pure function of tensors.

The adversarial terms are genrun.losses.adversarial's (any `loss=`); these are what the papers add.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def l1(output: Tensor, target: Tensor) -> Tensor:
    """Isola et al. 2017, eq. 3: L_L1(G) = E ||y - G(x)||_1 (mean over pixels)."""
    return (output.float() - target.float()).abs().mean()


def cycle_consistency(a: Tensor, a_back: Tensor, b: Tensor, b_back: Tensor) -> Tensor:
    """Zhu et al. 2017, eq. 2: E ||F(G(a)) - a||_1 + E ||G(F(b)) - b||_1."""
    return l1(a_back, a) + l1(b_back, b)


def identity_mapping(a: Tensor, f_of_a: Tensor, b: Tensor, g_of_b: Tensor) -> Tensor:
    """Zhu et al. 2017, sec. 5.2 (after Taigman et al. 2017): E ||G(b) - b||_1 + E ||F(a) - a||_1."""
    return l1(g_of_b, b) + l1(f_of_a, a)


def overlap_weights(mask: Tensor, overlap: int, overlap_weight: float) -> Tensor:
    """Pathak et al. 2016, sec. 3.2 (their code's wtl2 matrix): weight 1 in the hole, `overlap_weight`
    on the `overlap` px wide border of visible context around it that the prediction also covers,
    0 elsewhere; [N, 1, H, W]."""
    hole = mask.float()
    if overlap == 0:
        return hole
    grown = F.max_pool2d(hole, 2 * overlap + 1, stride=1, padding=overlap)  # the hole dilated by `overlap`
    return hole + overlap_weight * (grown - hole)


def weighted_l2(output: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Pathak et al. 2016, eq. 1 with the overlap weights: sum w (x - F(x))^2 over the predicted
    region (w > 0), divided by its size (values x channels)."""
    squared = (output.float() - target.float()).pow(2) * weights
    region = (weights > 0).float().expand_as(squared).sum().clamp_min(1)
    return squared.sum() / region
