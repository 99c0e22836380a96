"""f-GAN (Nowozin et al. 2016): one objective, parameterised by an f-divergence.

D_f(P || Q) = E_Q[f(p/q)] >= sup_T E_P[T] - E_Q[f*(T)], with equality at T* = f'(p/q). The
critic's raw output V is mapped into the domain of the Fenchel conjugate f* by the output
activation g_f, T = g_f(V). Each divergence below is one row of the paper's tables 1-2 (table 6
in the appendix): its f, f' (so T* = f'(p/q)), g_f, f* and f'(1), the critic's value at P = Q.
Where composing f*(g_f(v)) would overflow or cancel, `conjugate_at` gives the same function of v
in a stable form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.ranges import NonNegative, OpenUnit, PositiveInt, Real

NEWTON_STEPS = 4  # from Winitzki's start Newton reaches double precision in 3 steps (residual 2e-4, 6e-9, 1e-16)
OMEGA_TAIL = -40.0  # below, W(e^z) = e^z to double precision (the next term is -e^{2z})


# -- Lambert W ------------------------------------------------------------------------------
def _omega(z: Tensor) -> Tensor:
    """W(e^z) for real z (the Wright omega function), by Newton's method on w + log w = z.

    Works in log space, so W(e^z) for z = 1000 needs no e^1000. No gradient: see WrightOmega.
    """
    zc = z.clamp(min=OMEGA_TAIL)
    s = F.softplus(zc)  # log(1 + x) with x = e^z, formed without e^z
    w = s * (1 - torch.log1p(s) / (2 + s))  # Winitzki 2003: W(x) ~ L (1 - log(1 + L) / (2 + L)), L = log(1 + x)
    for _ in range(NEWTON_STEPS):
        w = w * (1 + zc - torch.log(w)) / (1 + w)
    w = torch.where(z < OMEGA_TAIL, torch.exp(z), w)
    return torch.where(z == math.inf, z, w)


class WrightOmega(torch.autograd.Function):
    """omega(z) = W(e^z), differentiable: d omega / dz = omega / (1 + omega)."""

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:
        w = _omega(z)
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (w,) = ctx.saved_tensors
        return grad * w / (1 + w)


class LambertW(torch.autograd.Function):
    """Principal branch W(x) for x >= 0 (W e^W = x), differentiable: W'(x) = e^{-W} / (1 + W).

    That form of W'(x) = W / (x (1 + W)) stays finite at x = 0, where W'(0) = 1.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        w = _omega(torch.log(x))  # log 0 = -inf gives W(0) = 0; x < 0 gives NaN, as log does
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (w,) = ctx.saved_tensors
        return grad * torch.exp(-w) / (1 + w)


def lambert_w(x: Tensor) -> Tensor:
    """Lambert W, principal branch, for real x >= 0 (NaN below 0, like torch.log)."""
    return LambertW.apply(x)


def wright_omega(z: Tensor) -> Tensor:
    """W(e^z) for any real z, without forming e^z (which overflows for z > 88 in float32)."""
    return WrightOmega.apply(z)


# -- stable pieces ----------------------------------------------------------------------------
def log_softplus(x: Tensor) -> Tensor:
    """log(softplus(x)) = log log(1 + e^x), finite (with finite gradient) where softplus(x) underflows."""
    return torch.where(x < OMEGA_TAIL, x, torch.log(F.softplus(x.clamp(min=OMEGA_TAIL))))


def log1mexp_from_log(log_a: Tensor) -> Tensor:
    """log(1 - e^{-a}) for a > 0 given log a (Maechler 2012's split at a = log 2; log a for tiny a)."""
    a = log_a.exp()
    # each branch sees only inputs where it is finite, so torch.where passes no NaN gradients
    small = torch.log(-torch.expm1(-a.clamp(min=math.exp(OMEGA_TAIL), max=math.log(2))))
    large = torch.log1p(-torch.exp(-a.clamp(min=math.log(2))))
    return torch.where(log_a < OMEGA_TAIL, log_a, torch.where(a < math.log(2), small, large))


# -- the divergences (Nowozin et al. 2016, tables 1-2) -----------------------------------------
class Divergence:
    """One f-divergence: f (convex; f(1) = 0 but for the GAN's), f', output activation g_f, conjugate f*, f'(1)."""

    f_prime_one: float = 0.0  # f'(1): the optimal critic T* = f'(p/q) where P = Q

    def f(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def f_prime(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def activation(self, v: Tensor) -> Tensor:
        """g_f: any real logit v -> a value in the domain of f*."""
        raise NotImplementedError

    def conjugate(self, t: Tensor) -> Tensor:
        """f*(t) = sup_u u t - f(u), for t in its domain."""
        raise NotImplementedError

    def conjugate_at(self, v: Tensor) -> Tensor:
        """f*(g_f(v)); overridden where a stable closed form exists."""
        return self.conjugate(self.activation(v))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class TotalVariation(Divergence):
    """f(u) = |u - 1| / 2; g_f(v) = tanh(v) / 2; f*(t) = t on |t| <= 1/2."""

    def f(self, u: Tensor) -> Tensor:
        return 0.5 * (u - 1).abs()

    def f_prime(self, u: Tensor) -> Tensor:
        return 0.5 * torch.sign(u - 1)

    def activation(self, v: Tensor) -> Tensor:
        return 0.5 * torch.tanh(v)

    def conjugate(self, t: Tensor) -> Tensor:
        return t


class KL(Divergence):
    """KL(P || Q): f(u) = u log u; g_f(v) = v; f*(t) = exp(t - 1)."""

    f_prime_one = 1.0

    def f(self, u: Tensor) -> Tensor:
        return torch.xlogy(u, u)

    def f_prime(self, u: Tensor) -> Tensor:
        return 1 + torch.log(u)

    def activation(self, v: Tensor) -> Tensor:
        return v

    def conjugate(self, t: Tensor) -> Tensor:
        return torch.exp(t - 1)


class ReverseKL(Divergence):
    """KL(Q || P): f(u) = -log u; g_f(v) = -exp(-v); f*(t) = -1 - log(-t) on t < 0."""

    f_prime_one = -1.0

    def f(self, u: Tensor) -> Tensor:
        return -torch.log(u)

    def f_prime(self, u: Tensor) -> Tensor:
        return -1 / u

    def activation(self, v: Tensor) -> Tensor:
        return -torch.exp(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return -1 - torch.log(-t)

    def conjugate_at(self, v: Tensor) -> Tensor:
        return v - 1


class Pearson(Divergence):
    """Pearson chi^2: f(u) = (u - 1)^2; g_f(v) = v; f*(t) = t^2 / 4 + t."""

    def f(self, u: Tensor) -> Tensor:
        return (u - 1).pow(2)

    def f_prime(self, u: Tensor) -> Tensor:
        return 2 * (u - 1)

    def activation(self, v: Tensor) -> Tensor:
        return v

    def conjugate(self, t: Tensor) -> Tensor:
        return 0.25 * t.pow(2) + t


class Neyman(Divergence):
    """Neyman chi^2: f(u) = (1 - u)^2 / u; g_f(v) = 1 - exp(-v); f*(t) = 2 - 2 sqrt(1 - t) on t < 1."""

    def f(self, u: Tensor) -> Tensor:
        return (1 - u).pow(2) / u

    def f_prime(self, u: Tensor) -> Tensor:
        return 1 - u.pow(-2)

    def activation(self, v: Tensor) -> Tensor:
        return -torch.expm1(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return 2 - 2 * torch.sqrt(1 - t)

    def conjugate_at(self, v: Tensor) -> Tensor:
        return 2 - 2 * torch.exp(-0.5 * v)


class SquaredHellinger(Divergence):
    """Squared Hellinger: f(u) = (sqrt(u) - 1)^2; g_f(v) = 1 - exp(-v); f*(t) = t / (1 - t) on t < 1."""

    def f(self, u: Tensor) -> Tensor:
        return (u.sqrt() - 1).pow(2)

    def f_prime(self, u: Tensor) -> Tensor:
        return 1 - u.rsqrt()

    def activation(self, v: Tensor) -> Tensor:
        return -torch.expm1(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return t / (1 - t)

    def conjugate_at(self, v: Tensor) -> Tensor:
        return torch.expm1(v)


class Jeffrey(Divergence):
    """Jeffrey (KL(P||Q) + KL(Q||P)): f(u) = (u - 1) log u; g_f(v) = v;
    f*(t) = W(e^{1-t}) + 1 / W(e^{1-t}) + t - 2 with W the Lambert W function."""

    def f(self, u: Tensor) -> Tensor:
        return (u - 1) * torch.log(u)

    def f_prime(self, u: Tensor) -> Tensor:
        return 1 + torch.log(u) - 1 / u

    def activation(self, v: Tensor) -> Tensor:
        return v

    def conjugate(self, t: Tensor) -> Tensor:
        w = wright_omega(1 - t)  # W(e^{1-t}) without forming e^{1-t}
        return w + torch.exp(w - (1 - t)) + t - 2  # 1/W = e^{W - (1 - t)} since W e^W = e^{1-t}


class JensenShannon(Divergence):
    """Jensen-Shannon as in the paper's f: f(u) = -(u + 1) log((1 + u) / 2) + u log u, whose D_f is
    KL(P||M) + KL(Q||M) = 2 JSD(P, Q), M = (P + Q) / 2; g_f(v) = log 2 - log(1 + e^{-v});
    f*(t) = -log(2 - e^t) on t < log 2."""

    def f(self, u: Tensor) -> Tensor:
        return -(u + 1) * torch.log((1 + u) / 2) + torch.xlogy(u, u)

    def f_prime(self, u: Tensor) -> Tensor:
        return math.log(2) + torch.log(u) - torch.log1p(u)

    def activation(self, v: Tensor) -> Tensor:
        return math.log(2) - F.softplus(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return -torch.log(2 - torch.exp(t))

    def conjugate_at(self, v: Tensor) -> Tensor:
        return F.softplus(v) - math.log(2)  # 2 - e^{g_f(v)} = 2 sigmoid(-v)


class JensenShannonWeighted(Divergence):
    """pi KL(P||M) + (1 - pi) KL(Q||M), M = pi P + (1 - pi) Q: f(u) = pi u log u - (1 - pi + pi u) log(1 - pi + pi u);
    g_f(v) = -pi log pi - log(1 + e^{-v}); f*(t) = (1 - pi) log((1 - pi) / (1 - pi e^{t / pi}))."""

    def __init__(self, pi: OpenUnit = 0.5) -> None:
        if not 0 < pi < 1:
            raise GenrunError(f"loss.divergence.pi={pi}: must be in (0, 1) (0.5 gives the Jensen-Shannon divergence)")
        self.pi = pi

    def f(self, u: Tensor) -> Tensor:
        m = 1 - self.pi + self.pi * u
        return self.pi * torch.xlogy(u, u) - torch.xlogy(m, m)

    def f_prime(self, u: Tensor) -> Tensor:
        return self.pi * (torch.log(u) - torch.log(1 - self.pi + self.pi * u))

    def activation(self, v: Tensor) -> Tensor:
        return -self.pi * math.log(self.pi) - F.softplus(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return (1 - self.pi) * (math.log(1 - self.pi) - torch.log(1 - self.pi * torch.exp(t / self.pi)))

    def conjugate_at(self, v: Tensor) -> Tensor:
        # 1 - pi e^{g_f(v) / pi} = 1 - e^{-a} with a = softplus(-v) / pi
        log_a = log_softplus(-v) - math.log(self.pi)
        return (1 - self.pi) * (math.log(1 - self.pi) - log1mexp_from_log(log_a))


class GAN(Divergence):
    """The GAN's f: f(u) = u log u - (u + 1) log(u + 1) (f(1) = -log 4, D_f = 2 JSD - log 4); g_f(v) = -log(1 + e^{-v});
    f*(t) = -log(1 - e^t) on t < 0. Its d_loss is the minimax GAN's."""

    f_prime_one = -math.log(2)

    def f(self, u: Tensor) -> Tensor:
        return torch.xlogy(u, u) - torch.xlogy(u + 1, u + 1)

    def f_prime(self, u: Tensor) -> Tensor:
        return torch.log(u) - torch.log1p(u)

    def activation(self, v: Tensor) -> Tensor:
        return -F.softplus(-v)

    def conjugate(self, t: Tensor) -> Tensor:
        return -torch.log(-torch.expm1(t))

    def conjugate_at(self, v: Tensor) -> Tensor:
        return F.softplus(v)  # 1 - e^{g_f(v)} = sigmoid(-v)


class Alpha(Divergence):
    """alpha-divergence (alpha not 0 or 1): f(u) = (u^alpha - 1 - alpha (u - 1)) / (alpha (alpha - 1));
    g_f(v) = 1 / (1 - alpha) - log(1 + e^{-v}) for alpha < 1, v for alpha > 1;
    f*(t) = ((t (alpha - 1) + 1)^{alpha / (alpha - 1)} - 1) / alpha.

    For alpha > 1, below t = -1 / (alpha - 1) (where the table's formula is undefined) the
    supremum over u >= 0 sits at u = 0 and f*(t) = -f(0) = -1 / alpha: the base is clamped at 0.
    """

    def __init__(self, alpha: Real = 0.5) -> None:
        if alpha in (0, 1) or not math.isfinite(alpha):
            raise GenrunError(f"loss.divergence.alpha={alpha}: must be finite and not 0 or 1 "
                              "(the limits are fgan_reverse_kl and fgan_kl)")
        self.alpha = alpha

    def f(self, u: Tensor) -> Tensor:
        a = self.alpha
        return (u.pow(a) - 1 - a * (u - 1)) / (a * (a - 1))

    def f_prime(self, u: Tensor) -> Tensor:
        a = self.alpha
        return (u.pow(a - 1) - 1) / (a - 1)

    def activation(self, v: Tensor) -> Tensor:
        return 1 / (1 - self.alpha) - F.softplus(-v) if self.alpha < 1 else v

    def conjugate(self, t: Tensor) -> Tensor:
        a = self.alpha
        base = t * (a - 1) + 1
        if a > 1:
            base = base.clamp(min=0)
        return (base.pow(a / (a - 1)) - 1) / a

    def conjugate_at(self, v: Tensor) -> Tensor:
        a = self.alpha
        if a > 1:
            return self.conjugate(v)
        log_base = math.log(1 - a) + log_softplus(-v)  # t (a - 1) + 1 = (1 - a) softplus(-v)
        return (torch.exp(a / (a - 1) * log_base) - 1) / a


# -- the objective ----------------------------------------------------------------------------
class FGAN(AdversarialLoss):
    """Nowozin et al. 2016, sec. 3: the critic maximises E_P[g_f(V)] - E_Q[f*(g_f(V))]; G minimises the same
    (`saturating`, alg. 1) or maximises E_Q[g_f(V)] (`alternative`, sec. 3.2)."""

    generator_losses = ("saturating", "alternative")

    def __init__(self, divergence: Divergence, generator_loss: str = "saturating", critic_norm: str = "batch",
                 r1_gamma: NonNegative = 0.0, r1_every: PositiveInt = 1) -> None:
        super().__init__(critic_norm, r1_gamma, r1_every)
        if generator_loss not in self.generator_losses:
            raise GenrunError(f"loss.generator_loss={generator_loss}: valid: {', '.join(self.generator_losses)}")
        self.divergence, self.generator_loss = divergence, generator_loss

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return self.divergence.conjugate_at(fake).mean() - self.divergence.activation(real).mean()

    def g_loss(self, fake: Tensor) -> Tensor:
        if self.generator_loss == "alternative":
            return -self.divergence.activation(fake).mean()
        return -self.divergence.conjugate_at(fake).mean()

    def g_loss_real(self, real: Tensor) -> Tensor:
        """Saturating: the data side's part of the bound, E_P[T], minimised; alternative: the
        bound with P and Q swapped on this side, E[f*(T)] minimised (as d_loss(fake, real))."""
        if self.generator_loss == "alternative":
            return self.divergence.conjugate_at(real).mean()
        return self.divergence.activation(real).mean()
