"""Adversarial domain adaptation (Ganin & Lempitsky 2015; Ganin et al. 2016): a feature extractor
trained so that a label classifier works on the source domain while a domain classifier cannot
tell source from target features.

The domain classifier always minimises its cross-entropy; how the feature extractor answers it is
the invariance (`model.invariance`, genrun.losses.invariance). lambda_p = `weight` x (2 / (1 + exp(-gamma p)) - 1), p the fraction of training done (Ganin &
Lempitsky 2015, sec. 5.1, gamma = 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genrun.errors import GenrunError
from genrun.ranges import NonNegative


def grl_lambda(progress: Tensor | float, gamma: float = 10.0) -> Tensor:
    """Ganin & Lempitsky 2015, sec. 5.1: lambda_p = 2 / (1 + exp(-gamma p)) - 1, from 0 at p = 0 towards 1."""
    p = torch.as_tensor(progress, dtype=torch.float32)
    return 2.0 / (1.0 + torch.exp(-gamma * p)) - 1.0


def domain_cross_entropy(logits: Tensor, domains: Tensor) -> Tensor:
    """-E[d log q(d = 1 | f) + (1 - d) log q(d = 0 | f)]: the domain classifier's loss (target d = 1)."""
    return F.binary_cross_entropy_with_logits(logits.flatten().float(), domains.float())


def binary_entropy(p: Tensor) -> Tensor:
    """H(p) in nats of a Bernoulli(p): the cross-entropy of the domains' marginal."""
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * p.log() + (1 - p) * (1 - p).log())


class DomainAdversarial:
    """The objective of model=dann: the label cross-entropy on source examples, and the domain
    cross-entropy whose weight on the features follows lambda_p (up to `weight`)."""

    kind = "domain"

    def __init__(self, gamma: NonNegative = 10.0, weight: NonNegative = 1.0) -> None:
        if not gamma >= 0 or not weight >= 0:
            raise GenrunError(f"loss.gamma={gamma} and loss.weight={weight} must be >= 0 (the paper: 10 and 1)")
        self.gamma, self.weight = gamma, weight

    def domain_weight(self, progress: Tensor | float) -> Tensor:
        """lambda_p: the weight of the domain term on the features after a fraction `progress` of training."""
        return self.weight * grl_lambda(progress, self.gamma)

    def label_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), labels)

    def domain_loss(self, logits: Tensor, domains: Tensor) -> Tensor:
        return domain_cross_entropy(logits, domains)
