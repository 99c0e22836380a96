"""Adversarial objectives on critic logits: one class per paper, its losses written as
functions of the critic's outputs (only the regularisers call the critic itself).

A critic returns logits V(x); for the likelihood-ratio GANs D(x) = sigmoid(V(x)), so
-log D = softplus(-V) and -log(1 - D) = softplus(V), which is exact and stable.
The f-GAN family lives in genrun/losses/fgan.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrun.errors import GenrunError
from genrun.losses.penalties import clip_weights, gradient_penalty, r1_penalty
from genrun.ranges import Decay, NonNegative, Positive, PositiveInt, Real

Critic = Callable[[Tensor], Tensor]


class AdversarialLoss:
    """An objective for a discriminator/critic and a generator.

    `critic_norm` states the normalisation this objective needs in its critic (batch norm
    couples the samples of a batch, which per-sample penalties forbid); model configs read it.
    `r1_gamma` > 0 adds the R1 penalty on real data to any objective (Mescheder et al. 2018),
    with every critic update, or lazily with `r1_every` = k > 1: on every k-th step only, in a
    phase of its own, weighted k times (Karras et al. 2020, sec. 3.1), which costs 1/k as much.
    """

    kind = "adversarial"

    def __init__(self, critic_norm: str = "batch", r1_gamma: NonNegative = 0.0, r1_every: PositiveInt = 1) -> None:
        if not r1_gamma >= 0:
            raise GenrunError(f"loss.r1_gamma={r1_gamma}: must be >= 0 (0 turns R1 off)")
        if isinstance(r1_every, bool) or not isinstance(r1_every, int) or r1_every < 1:
            raise GenrunError(f"loss.r1_every={r1_every!r}: must be an integer >= 1 (1: with every critic update)")
        self.critic_norm = critic_norm
        self.r1_gamma, self.r1_every = r1_gamma, r1_every

    @property
    def lazy_every(self) -> int:
        """k > 1 when a regulariser runs every k-th step in a phase of its own (lazy R1), else 1."""
        return self.r1_every if self.r1_gamma > 0 else 1

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Critic loss from the logits of a real and a generated batch (minimised)."""
        raise NotImplementedError

    def g_loss(self, fake: Tensor) -> Tensor:
        """Generator loss from the critic's logits on generated samples (minimised)."""
        raise NotImplementedError

    def g_loss_real(self, real: Tensor) -> Tensor:
        """The generator side's loss on the critic's logits of data-side inputs (minimised).

        Two-sided games move both sides: BiGAN/ALI's encoder makes its pairs (x, E(x)) look
        generated, as the generator makes (G(z), z) look real (Donahue et al. 2017, sec. 3.4,
        "inverted labels"). The G+E loss is `g_loss(fake) + g_loss_real(real)`.
        """
        raise NotImplementedError

    def regularizers(self, critic: Critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """Extra critic terms of every critic update (already weighted), by the scalar name they are
        logged under; a lazy R1 (`r1_every` > 1) is in `lazy_regularizers` instead."""
        if self.r1_gamma == 0 or self.r1_every > 1:
            return {}
        return {"r1": 0.5 * self.r1_gamma * r1_penalty(critic, real)}

    def lazy_regularizers(self, critic: Critic, real: Tensor) -> dict[str, Tensor]:
        """The terms of the lazy phase every `r1_every` = k steps: k * gamma/2 E_P[||grad_x V(x)||^2],
        so that on average R1 weighs gamma/2 per step, as when it runs with every update."""
        return {"r1": self.r1_every * 0.5 * self.r1_gamma * r1_penalty(critic, real)}

    def after_critic_step(self, critic: nn.Module) -> None:
        """Called after each critic update (e.g. WGAN's weight clipping); nothing by default."""


class Minimax(AdversarialLoss):
    """Goodfellow et al. 2014, eq. 1: min_G max_D E[log D(x)] + E[log(1 - D(G(z)))].

    `label_smoothing` = s > 0 is one-sided label smoothing (Salimans et al. 2016, sec. 3.4):
    real examples get the target 1 - s, generated ones keep the target 0.
    """

    def __init__(self, label_smoothing: Decay = 0.0, critic_norm: str = "batch", r1_gamma: NonNegative = 0.0,
                 r1_every: PositiveInt = 1) -> None:
        super().__init__(critic_norm, r1_gamma, r1_every)
        if not 0 <= label_smoothing < 1:
            raise GenrunError(f"loss.label_smoothing={label_smoothing}: must be in [0, 1) (0 = off, 0.1 is usual)")
        self.label_smoothing = label_smoothing

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        if self.label_smoothing == 0:
            real_term = F.softplus(-real).mean()  # -log D(x)
        else:  # -((1 - s) log D(x) + s log(1 - D(x)))
            target = torch.full_like(real, 1.0 - self.label_smoothing)
            real_term = F.binary_cross_entropy_with_logits(real, target)
        return real_term + F.softplus(fake).mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return -F.softplus(fake).mean()  # log(1 - D(G(z))), minimised

    def g_loss_real(self, real: Tensor) -> Tensor:
        return -F.softplus(-real).mean()  # log D(x), minimised: the same V with the other sign


class NonSaturating(Minimax):
    """Goodfellow et al. 2014, sec. 3: G maximises log D(G(z)) instead (strong early gradients)."""

    def g_loss(self, fake: Tensor) -> Tensor:
        return F.softplus(-fake).mean()  # -log D(G(z))

    def g_loss_real(self, real: Tensor) -> Tensor:
        return F.softplus(real).mean()  # -log(1 - D(x)): the data side's target swapped to 0


def importance_weights(logits: Tensor) -> Tensor:
    """Hjelm et al. 2018, eq. 9: w(x) = D(x) / (1 - D(x)) = e^V(x) estimates p(x) / g(x); normalised over
    the M samples of each z (dim 0 of [M, N] logits): softmax_m V(x_m), so each column sums to one."""
    return torch.softmax(logits.float(), dim=0)


class BoundarySeeking(Minimax):
    """Hjelm et al. 2018 (continuous BGAN): D as in the minimax GAN; G minimises
    1/2 E[(log D(G(z)) - log(1 - D(G(z))))^2] = 1/2 E[V(G(z))^2], pushing samples onto D's boundary.
    For a generator of discrete values, `discrete_g_loss` is the paper's importance-sampling estimator."""

    def g_loss(self, fake: Tensor) -> Tensor:
        return 0.5 * fake.pow(2).mean()  # log D - log(1 - D) is the logit V itself

    def g_loss_real(self, real: Tensor) -> Tensor:
        return 0.5 * real.pow(2).mean()  # the data side also moves onto the boundary

    def discrete_g_loss(self, fake: Tensor, log_probs: Tensor) -> Tensor:
        """Hjelm et al. 2018, sec. 2.3, alg. 1 (discrete BGAN): for M samples x_m ~ g(x | z) of each of
        N z's, with critic logits `fake` [M, N] and log g(x_m | z) `log_probs` [M, N], minimise
        -1/N sum_n sum_m w~_mn log g(x_mn | z_n), the normalised weights w~ held constant: the policy
        gradient toward the importance-weighted target p(x) ~ w(x) g(x)."""
        weights = importance_weights(fake).detach()
        return -(weights * log_probs.float()).sum(0).mean()


class LeastSquares(AdversarialLoss):
    """Mao et al. 2017, eq. 2: D min 1/2 E[(V(x) - b)^2] + 1/2 E[(V(G(z)) - a)^2]; G min 1/2 E[(V(G(z)) - c)^2].

    The defaults a=0, b=1, c=1 make G's samples look as real as possible; a=-1, b=1, c=0
    is the paper's other choice (the Pearson chi^2 one). V is the critic's raw output, no sigmoid.
    With the labels swapped (a <-> b) the target c becomes a + b - c: the data side's target in
    two-sided games (BiGAN's encoder), a with the defaults, 0 with (-1, 1, 0).
    """

    def __init__(self, a: Real = 0.0, b: Real = 1.0, c: Real = 1.0, critic_norm: str = "batch",
                 r1_gamma: NonNegative = 0.0, r1_every: PositiveInt = 1) -> None:
        super().__init__(critic_norm, r1_gamma, r1_every)
        self.a, self.b, self.c = a, b, c

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (real - self.b).pow(2).mean() + 0.5 * (fake - self.a).pow(2).mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return 0.5 * (fake - self.c).pow(2).mean()

    def g_loss_real(self, real: Tensor) -> Tensor:
        return 0.5 * (real - (self.a + self.b - self.c)).pow(2).mean()


class Hinge(AdversarialLoss):
    """Lim & Ye 2017; Miyato et al. 2018: D min E[relu(1 - V(x))] + E[relu(1 + V(G(z)))]; G min -E[V(G(z))]."""

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return -fake.mean()

    def g_loss_real(self, real: Tensor) -> Tensor:
        return real.mean()


class Wasserstein(AdversarialLoss):
    """Arjovsky et al. 2017, eq. 3: the critic maximises E[V(x)] - E[V(G(z))], G minimises -E[V(G(z))].

    The critic must be kept (K-)Lipschitz: the subclasses say how.
    """

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        return -fake.mean()

    def g_loss_real(self, real: Tensor) -> Tensor:
        return real.mean()


class WGAN(Wasserstein):
    """Arjovsky et al. 2017, alg. 1: Wasserstein critic, every weight clipped to [-clip, clip] after each update."""

    def __init__(self, clip: Positive = 0.01, critic_norm: str = "batch", r1_gamma: NonNegative = 0.0,
                 r1_every: PositiveInt = 1) -> None:
        super().__init__(critic_norm, r1_gamma, r1_every)
        if not clip > 0:
            raise GenrunError(f"loss.clip={clip}: must be > 0 (the paper uses 0.01)")
        self.clip = clip

    def after_critic_step(self, critic: nn.Module) -> None:
        clip_weights(critic, self.clip)


class WGANGP(Wasserstein):
    """Gulrajani et al. 2017, alg. 1: E[V(G(z))] - E[V(x)] + lambda E[(||grad V(x_hat)||_2 - 1)^2]."""

    def __init__(self, lambda_gp: NonNegative = 10.0, critic_norm: str = "layer", r1_gamma: NonNegative = 0.0,
                 r1_every: PositiveInt = 1) -> None:
        super().__init__(critic_norm, r1_gamma, r1_every)
        self.lambda_gp = lambda_gp

    def regularizers(self, critic: Critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        return {**super().regularizers(critic, real, fake), "gp": self.lambda_gp * gradient_penalty(critic, real, fake)}
