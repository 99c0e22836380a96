"""The semi-supervised GAN's objective (Salimans et al. 2016, sec. 5): a classifier of K classes
whose logits l_1..l_K are also the critic, with "generated" as an implicit class K+1 of logit 0.

D(x) = Z(x) / (Z(x) + 1) with Z(x) = sum_k exp l_k(x), so log D = lse(l) - softplus(lse(l)) and
log(1 - D) = -softplus(lse(l)) (lse = log-sum-exp): exact and stable. The critic's loss is the
labelled examples' cross-entropy plus `unlabelled_weight` times the unlabelled and generated terms,
written as in the authors' code (openai/improved-gan, train_mnist_feature_matching.py, `loss_lab`,
`loss_unl`); the generator matches the critic's mean features (feature matching, sec. 3.1).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from genrun.errors import GenrunError
from genrun.ranges import NonNegative


def real_probability(logits: Tensor) -> Tensor:
    """Salimans et al. 2016, sec. 5: D(x) = Z / (Z + 1), Z = sum_k exp l_k, i.e. sigmoid(lse(l))."""
    return logits.logsumexp(1).sigmoid()


def class_probabilities(logits: Tensor) -> Tensor:
    """p(y = k | x, y <= K) = softmax(l)_k: the classifier (adding a constant to every logit
    changes D(x), not these)."""
    return logits.softmax(1)


def labelled_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """-E log p(y | x, y <= K) = E[lse(l) - l_y] (the authors' `loss_lab`)."""
    return F.cross_entropy(logits, labels)


def unlabelled_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The authors' `loss_unl`: 1/2 (-E_x log D(x)) + 1/2 (-E_z log(1 - D(G(z)))), with
    -log D = -lse + softplus(lse) and -log(1 - D) = softplus(lse)."""
    l_unl, l_gen = real_logits.logsumexp(1), fake_logits.logsumexp(1)
    return 0.5 * (F.softplus(l_unl) - l_unl).mean() + 0.5 * F.softplus(l_gen).mean()


def feature_matching(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Salimans et al. 2016, sec. 3.1, as in the authors' MNIST code: mean |E f(x) - E f(G(z))| over
    the critic's features f (the paper writes the squared norm; the code takes the mean absolute value)."""
    return (real_features.flatten(1).mean(0) - fake_features.flatten(1).mean(0)).abs().mean()


class SemiSupervised:
    """Salimans et al. 2016's semi-supervised objective: critic loss = labelled cross-entropy +
    `unlabelled_weight` x the unlabelled/generated terms; generator loss = feature matching.
    `unlabelled_weight=0` leaves the critic a supervised classifier of the labelled subset (the
    generator still trains, and no longer matters): the same network's supervised-only baseline."""

    kind = "semi_supervised"

    def __init__(self, unlabelled_weight: NonNegative = 1.0) -> None:
        if not unlabelled_weight >= 0:
            raise GenrunError(f"loss.unlabelled_weight={unlabelled_weight}: must be >= 0 (1 in the paper)")
        self.unlabelled_weight = unlabelled_weight

    def critic_terms(self, labelled_logits: Tensor, labels: Tensor, real_logits: Tensor,
                     fake_logits: Tensor) -> dict[str, Tensor]:
        """The critic's two terms (unweighted), by the scalar names they are logged under."""
        return {"ssgan/labelled": labelled_loss(labelled_logits, labels),
                "ssgan/unlabelled": unlabelled_loss(real_logits, fake_logits)}

    def critic_loss(self, terms: dict[str, Tensor]) -> Tensor:
        return terms["ssgan/labelled"] + self.unlabelled_weight * terms["ssgan/unlabelled"]

    def generator_loss(self, real_features: Tensor, fake_features: Tensor) -> Tensor:
        return feature_matching(real_features, fake_features)
