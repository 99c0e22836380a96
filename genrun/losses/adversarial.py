"""Adversarial objectives on critic logits. Each is a pure function of tensors.

A critic returns logits V(x); for the likelihood-ratio GANs D(x) = sigmoid(V(x)), so
-log D = softplus(-V) and -log(1 - D) = softplus(V), which is exact and stable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from genrun.losses.penalties import gradient_penalty

Critic = Callable[[Tensor], Tensor]


class AdversarialLoss:
    """An objective for a discriminator/critic and a generator.

    `critic_norm` states the normalisation this objective needs in its critic (batch norm
    couples the samples of a batch, which per-sample penalties forbid); model configs read it.
    """

    kind = "adversarial"

    def __init__(self, critic_norm: str = "batch") -> None:
        self.critic_norm = critic_norm

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Critic loss from the logits of a real and a generated batch (minimised)."""
        raise NotImplementedError

    def g_loss(self, fake: Tensor) -> Tensor:
        """Generator loss from the critic's logits on generated samples (minimised)."""
        raise NotImplementedError

    def regularizers(self, critic: Critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """Extra critic terms (already weighted), by the scalar name they are logged under."""
        return {}

    def after_critic_step(self, critic: nn.Module) -> None:
        """Called after each critic update (e.g. WGAN's weight clipping); nothing by default."""


class Minimax(AdversarialLoss):
    """Goodfellow et al. 2014, eq. 1: min_G max_D E[log D(x)] + E[log(1 - D(G(z)))]."""

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return -F.softplus(fake).mean()  # log(1 - D(G(z))), minimised


class NonSaturating(Minimax):
    """Goodfellow et al. 2014, sec. 3: G maximises log D(G(z)) instead (strong early gradients)."""

    def g_loss(self, fake: Tensor) -> Tensor:
        return F.softplus(-fake).mean()  # -log D(G(z))


class WGANGP(AdversarialLoss):
    """Gulrajani et al. 2017, alg. 1: E[V(G(z))] - E[V(x)] + lambda E[(||grad V(x_hat)||_2 - 1)^2]."""

    def __init__(self, lambda_gp: float = 10.0, critic_norm: str = "layer") -> None:
        super().__init__(critic_norm)
        self.lambda_gp = lambda_gp

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return -fake.mean()

    def regularizers(self, critic: Critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        return {"gp": self.lambda_gp * gradient_penalty(critic, real, fake)}
