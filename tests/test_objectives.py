"""The adversarial objectives of issue #3 against their papers: values, conjugates, bounds, training."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.errors import ConfigCompositionException
from torch import nn

from genrun.build import build, build_pipeline, losses_of_kind
from genrun.engine.checkpoint import load_checkpoint
from genrun.errors import GenrunError
from genrun.losses import fgan
from genrun.losses.adversarial import (
    WGAN,
    WGANGP,
    AdversarialLoss,
    BoundarySeeking,
    Hinge,
    LeastSquares,
    Minimax,
    NonSaturating,
    Wasserstein,
)
from genrun.losses.fgan import (
    FGAN,
    GAN,
    KL,
    OMEGA_TAIL,
    Alpha,
    Divergence,
    JensenShannonWeighted,
    lambert_w,
    log1mexp_from_log,
    wright_omega,
)
from genrun.train import run
from tests.conftest import compose_config

F64 = torch.float64


def logit(p: float) -> torch.Tensor:
    return torch.tensor([math.log(p / (1 - p))])


# -- Lambert W ------------------------------------------------------------------------------
def test_lambert_w_known_values():
    x = torch.tensor([0.0, 1.0, math.e, 10.0, 50 * math.exp(50)], dtype=F64)
    expected = torch.tensor([0.0, 0.567143290409784, 1.0, 1.7455280027406994, 50.0], dtype=F64)
    assert torch.allclose(lambert_w(x), expected, rtol=1e-13, atol=1e-15)
    huge = torch.tensor([1e100, 1e300], dtype=F64)  # W e^W = x, checked in log space
    w = lambert_w(huge)
    assert torch.allclose(w + w.log(), huge.log(), rtol=1e-14)
    # float32 agrees with float64 to float32 precision
    x32 = torch.logspace(-20, 30, 200)
    assert torch.allclose(lambert_w(x32).double(), lambert_w(x32.double()), rtol=1e-6)


def test_wright_omega_is_w_of_exp_without_overflow():
    z = torch.linspace(-60, 700, 5001, dtype=F64)  # e^700 is near the float64 limit; omega never forms it
    w = wright_omega(z)
    assert torch.allclose(w + w.log(), z, rtol=1e-14, atol=1e-13)
    mid = torch.linspace(-5, 5, 11, dtype=F64)
    assert torch.allclose(wright_omega(mid), lambert_w(mid.exp()), rtol=1e-14)
    assert wright_omega(torch.tensor([200.0])).isfinite().all()  # float32, where e^200 is inf


def test_newton_from_winitzki_start_reaches_double_precision_in_three_steps(monkeypatch):
    # the start's quality is what NEWTON_STEPS = 4 relies on: one step to spare (residual 2e-4, 6e-9, 1e-16)
    monkeypatch.setattr(fgan, "NEWTON_STEPS", 3)
    z = torch.linspace(OMEGA_TAIL, 50, 90_001, dtype=F64)
    w = wright_omega(z)
    assert ((w + w.log() - z).abs() / z.abs().clamp(min=1)).max().item() < 4e-15


def test_lambert_w_gradients():
    x = torch.tensor([1e-6, 0.3, 1.0, 5.0, 1e3], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambert_w, (x,))
    z = torch.tensor([-50.0, -3.0, 0.3, 1.0, 5.0, 1e3], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(wright_omega, (z,))
    zero = torch.zeros(1, dtype=F64, requires_grad=True)
    lambert_w(zero).sum().backward()
    assert zero.grad.item() == 1.0  # W'(0) = 1, finite although W/(x(1+W)) is 0/0 there


# -- the f-divergences ----------------------------------------------------------------------
FGAN_LOSSES = [name for name in losses_of_kind(("adversarial",)) if name.startswith("fgan_")]


def divergence(name: str, *overrides: str) -> Divergence:
    return build(compose_config(f"loss={name}", *overrides).loss, name).divergence


DIVERGENCES = {name[5:]: divergence(name) for name in FGAN_LOSSES}
DIVERGENCES.update({"alpha=-1": Alpha(-1.0), "alpha=2": Alpha(2.0), "alpha=3.5": Alpha(3.5),
                    "jensen_shannon_weighted(pi=0.3)": JensenShannonWeighted(0.3)})


def test_the_table_is_complete():
    assert set(DIVERGENCES) >= {"total_variation", "kl", "reverse_kl", "pearson", "neyman", "squared_hellinger",
                                "jeffrey", "jensen_shannon", "jensen_shannon_weighted", "gan", "alpha"}


@pytest.mark.parametrize("name", DIVERGENCES)
def test_conjugate_at_f_prime_of_one(name):
    div = DIVERGENCES[name]
    one = torch.ones(1, dtype=F64)
    assert div.f_prime(one).item() == pytest.approx(div.f_prime_one, abs=1e-15)
    f1 = -math.log(4) if name == "gan" else 0.0  # the GAN's f is 2 JSD - log 4
    assert div.f(one).item() == pytest.approx(f1, abs=1e-15)
    t = torch.tensor([div.f_prime_one], dtype=F64)
    assert div.conjugate(t).item() == pytest.approx(div.f_prime_one - f1, abs=1e-12)  # f*(f'(1)) = f'(1) - f(1)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_conjugate_is_the_fenchel_conjugate(name):
    div = DIVERGENCES[name]
    # f*(t) = sup_u u t - f(u), by brute force on a fine grid of u > 0, at t = g_f(v) (always in dom f*)
    u = torch.logspace(-7, 3, 400_001, dtype=F64)
    t = div.activation(torch.tensor([-1.0, -0.3, 0.3, 1.0], dtype=F64))
    sup = (u[None, :] * t[:, None] - div.f(u)[None, :]).max(dim=1).values
    assert torch.allclose(div.conjugate(t), sup, rtol=1e-5, atol=1e-6)
    # and where the sup is attained: f*(f'(u)) = u f'(u) - f(u)
    u = torch.tensor([0.2, 0.5, 0.9, 1.3, 2.0, 5.0], dtype=F64)
    assert torch.allclose(div.conjugate(div.f_prime(u)), u * div.f_prime(u) - div.f(u), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_stable_forms_agree_and_stay_finite(name):
    div = DIVERGENCES[name]
    v = torch.linspace(-6, 6, 241, dtype=F64)
    assert torch.allclose(div.conjugate_at(v), div.conjugate(div.activation(v)), rtol=1e-10, atol=1e-10)
    wide = torch.linspace(-30, 30, 241, requires_grad=True)  # float32, logits far out in both tails
    value = div.conjugate_at(wide).sum() - div.activation(wide).sum()
    (grad,) = torch.autograd.grad(value, wide)
    assert value.isfinite() and grad.isfinite().all()


def softplus_ref(v: torch.Tensor) -> torch.Tensor:
    return torch.log(1 + torch.exp(v))


def jsw_row(pi: float):
    return (lambda v: -pi * math.log(pi) - softplus_ref(-v),
            lambda t: (1 - pi) * torch.log((1 - pi) / (1 - pi * torch.exp(t / pi))))


def alpha_row(a: float):
    g_f = (lambda v: 1 / (1 - a) - softplus_ref(-v)) if a < 1 else (lambda v: v)
    return g_f, lambda t: ((t * (a - 1) + 1).pow(a / (a - 1)) - 1) / a


def jeffrey_conjugate(t: torch.Tensor) -> torch.Tensor:
    w = lambert_w(torch.exp(1 - t))
    return w + 1 / w + t - 2


# Nowozin et al. 2016, table 6: (g_f, f*) of every divergence, written out again from the paper
# rather than imported, so a changed sign or constant in genrun/losses/fgan.py shows.
PAPER_TABLE = {
    "total_variation": (lambda v: 0.5 * torch.tanh(v), lambda t: t),
    "kl": (lambda v: v, lambda t: torch.exp(t - 1)),
    "reverse_kl": (lambda v: -torch.exp(-v), lambda t: -1 - torch.log(-t)),
    "pearson": (lambda v: v, lambda t: 0.25 * t**2 + t),
    "neyman": (lambda v: 1 - torch.exp(-v), lambda t: 2 - 2 * torch.sqrt(1 - t)),
    "squared_hellinger": (lambda v: 1 - torch.exp(-v), lambda t: t / (1 - t)),
    "jeffrey": (lambda v: v, jeffrey_conjugate),
    "jensen_shannon": (lambda v: math.log(2) - softplus_ref(-v), lambda t: -torch.log(2 - torch.exp(t))),
    "jensen_shannon_weighted": jsw_row(0.5),
    "jensen_shannon_weighted(pi=0.3)": jsw_row(0.3),
    "gan": (lambda v: -softplus_ref(-v), lambda t: -torch.log(1 - torch.exp(t))),
    "alpha": alpha_row(0.5),
    "alpha=-1": alpha_row(-1.0),
    "alpha=2": alpha_row(2.0),
    "alpha=3.5": alpha_row(3.5),
}


def test_the_papers_table_covers_every_divergence():
    assert set(PAPER_TABLE) == set(DIVERGENCES)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_activation_and_losses_follow_the_papers_table(name):
    g_f, conjugate = PAPER_TABLE[name]
    div = DIVERGENCES[name]
    v = torch.tensor([-0.35, -0.1, 0.0, 0.4, 1.1, 2.0], dtype=F64)  # g_f(v) inside the table's dom f* for all
    assert torch.allclose(div.activation(v), g_f(v), rtol=1e-12, atol=1e-12)
    real, fake = v, 0.7 * v.flip(0) + 0.1
    t_real, t_fake = g_f(real), g_f(fake)
    # sec. 3, eq. 6: the critic maximises E_P[g_f(V)] - E_Q[f*(g_f(V))]; G minimises it (saturating, alg. 1)
    # or maximises E_Q[g_f(V)] (sec. 3.2); the data side's generator losses are the same terms on P
    saturating, alternative = FGAN(div), FGAN(div, "alternative")
    pairs = {
        "d_loss": (saturating.d_loss(real, fake), conjugate(t_fake).mean() - t_real.mean()),
        "g_loss": (saturating.g_loss(fake), -conjugate(t_fake).mean()),
        "g_loss alternative": (alternative.g_loss(fake), -t_fake.mean()),
        "g_loss_real": (saturating.g_loss_real(real), t_real.mean()),
        "g_loss_real alternative": (alternative.g_loss_real(real), conjugate(t_real).mean()),
    }
    for what, (got, want) in pairs.items():
        assert got.item() == pytest.approx(want.item(), rel=1e-10, abs=1e-12), what


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.5])
def test_alpha_above_one_keeps_v_and_its_conjugate_is_flat_below_the_tables_domain(alpha):
    div = Alpha(alpha)
    v = torch.tensor([-10.0, -3.0, 0.5], dtype=F64)
    assert torch.equal(div.activation(v), v)  # table 6: g_f(v) = v for alpha > 1
    # below t = -1 / (alpha - 1) the sup of u t - f(u) over u >= 0 sits at u = 0: f*(t) = -f(0) = -1 / alpha
    t = torch.tensor([-10.0, -1 / (alpha - 1) - 0.5], dtype=F64)
    assert torch.allclose(div.conjugate(t), torch.full_like(t, -1 / alpha), rtol=1e-12)
    assert torch.allclose(div.conjugate_at(t), div.conjugate(t))
    u = torch.logspace(-9, 3, 200_001, dtype=F64)
    sup = (u[None, :] * t[:, None] - div.f(u)[None, :]).max(dim=1).values
    assert torch.allclose(div.conjugate(t), sup, atol=1e-6)


def test_divergence_settings_are_checked_and_shown():
    assert JensenShannonWeighted().pi == 0.5 and Alpha().alpha == 0.5  # the configs' defaults
    assert repr(JensenShannonWeighted(0.3)) == "JensenShannonWeighted(pi=0.3)" and repr(KL()) == "KL()"
    for pi in (0.0, 1.0, 1.5):
        with pytest.raises(GenrunError, match=rf"loss.divergence.pi={pi}: must be in \(0, 1\)"):
            JensenShannonWeighted(pi)
    for alpha in (0, 1, math.inf, math.nan):
        with pytest.raises(GenrunError, match=r"must be finite and not 0 or 1 \(the limits are fgan_reverse_kl"):
            Alpha(alpha)
    assert Alpha(-1.0).alpha == -1.0 and Alpha(2.0).alpha == 2.0


def test_log1mexp_from_log_has_finite_gradients_where_a_underflows():
    # log(1 - e^-a) given log a: a = e^{log a} is 0 in floating point for log a = -800, where the branch that
    # torch.where discards must still be finite (its clamps), or its NaN gradient leaks through
    for dtype, tiny in ((F64, -800.0), (torch.float32, -120.0)):
        log_a = torch.tensor([tiny, -50.0, -1.0, math.log(math.log(2)), 0.5, 3.0], dtype=dtype, requires_grad=True)
        value = log1mexp_from_log(log_a)
        a = log_a.detach().double().exp()
        expected = torch.where(a > 0, torch.log(-torch.expm1(-a)), log_a.detach().double())
        assert torch.allclose(value.double(), expected, rtol=1e-6)
        (grad,) = torch.autograd.grad(value.sum(), log_a)
        assert grad.isfinite().all(), dtype


# Two 1D Gaussians P = N(0.5, 1) and Q = N(0, 1.2^2); D_f(P || Q) = E_Q[f(p/q)].
MU_P, SD_P, MU_Q, SD_Q = 0.5, 1.0, 0.0, 1.2


def log_normal(x: torch.Tensor, mu: float, sd: float) -> torch.Tensor:
    return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


def kl_normal(m1: float, s1: float, m2: float, s2: float) -> float:
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def chi2_normal(m1: float, s1: float, m2: float, s2: float) -> float:
    """Pearson chi^2(P || Q) = int p^2 / q - 1 for Gaussians (needs 2 s2^2 > s1^2)."""
    d = 2 * s2**2 - s1**2
    return s2**2 / (s1 * math.sqrt(d)) * math.exp((m1 - m2) ** 2 / d) - 1


def grid_divergence(integrand) -> float:
    """int integrand(p, q) dx on a fine grid (the reference where no closed form is at hand)."""
    x = torch.linspace(-20, 20, 400_001, dtype=F64)
    p, q = log_normal(x, MU_P, SD_P).exp(), log_normal(x, MU_Q, SD_Q).exp()
    return torch.trapezoid(integrand(p, q), x).item()


def jsd_weighted(pi: float) -> float:
    def integrand(p, q):
        m = pi * p + (1 - pi) * q
        return pi * torch.xlogy(p, p / m) + (1 - pi) * torch.xlogy(q, q / m)

    return grid_divergence(integrand)


def alpha_divergence(a: float) -> float:
    return (grid_divergence(lambda p, q: p**a * q ** (1 - a)) - 1) / (a * (a - 1))


KL_PQ, KL_QP = kl_normal(MU_P, SD_P, MU_Q, SD_Q), kl_normal(MU_Q, SD_Q, MU_P, SD_P)
VAR_SUM = SD_P**2 + SD_Q**2
BHATTACHARYYA = math.sqrt(2 * SD_P * SD_Q / VAR_SUM) * math.exp(-((MU_P - MU_Q) ** 2) / (4 * VAR_SUM))  # int sqrt(p q)
CLOSED_FORMS = {
    "kl": KL_PQ,
    "reverse_kl": KL_QP,
    "jeffrey": KL_PQ + KL_QP,
    "pearson": chi2_normal(MU_P, SD_P, MU_Q, SD_Q),
    "neyman": chi2_normal(MU_Q, SD_Q, MU_P, SD_P),
    "squared_hellinger": 2 - 2 * BHATTACHARYYA,  # int (sqrt p - sqrt q)^2
    "total_variation": grid_divergence(lambda p, q: 0.5 * (p - q).abs()),
    "jensen_shannon": 2 * jsd_weighted(0.5),  # the paper's f gives KL(P||M) + KL(Q||M)
    "jensen_shannon_weighted": jsd_weighted(0.5),
    "jensen_shannon_weighted(pi=0.3)": jsd_weighted(0.3),
    "gan": 2 * jsd_weighted(0.5) - math.log(4),
    "alpha": alpha_divergence(0.5),
    "alpha=-1": alpha_divergence(-1.0),
    "alpha=2": alpha_divergence(2.0),
}


def gaussian_samples(n: int = 400_000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x_p = MU_P + SD_P * torch.randn(n, generator=g, dtype=F64)
    x_q = MU_Q + SD_Q * torch.randn(n, generator=g, dtype=F64)
    return x_p, x_q


def log_ratio(x: torch.Tensor) -> torch.Tensor:
    return log_normal(x, MU_P, SD_P) - log_normal(x, MU_Q, SD_Q)


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_variational_bound_at_the_optimal_critic_is_the_divergence(name):
    # Nowozin et al. 2016, eq. 4-5: D_f = E_P[T*] - E_Q[f*(T*)] with T* = f'(p/q)
    div = DIVERGENCES[name]
    x_p, x_q = gaussian_samples()
    on_p, on_q = div.f_prime(log_ratio(x_p).exp()), div.conjugate(div.f_prime(log_ratio(x_q).exp()))
    bound = on_p.mean() - on_q.mean()
    stderr = math.sqrt(on_p.var().item() / len(on_p) + on_q.var().item() / len(on_q))
    assert abs(bound.item() - CLOSED_FORMS[name]) < 4 * stderr + 1e-4
    assert CLOSED_FORMS[name] > (-math.log(4) if name == "gan" else 0.0)  # the test compares something


def test_minimax_value_at_the_optimal_discriminator_is_2jsd_minus_log4():
    # Goodfellow et al. 2014, thm. 1: with D* = p / (p + q) (logit log p/q), V(D*, G) = 2 JSD(P, Q) - log 4;
    # the f-GAN with the GAN's f reaches the same value at the same logits (and p = q gives -log 4).
    x_p, x_q = gaussian_samples()
    value = -Minimax().d_loss(log_ratio(x_p), log_ratio(x_q)).item()
    assert value == pytest.approx(CLOSED_FORMS["gan"], abs=3e-3)
    assert -FGAN(GAN()).d_loss(log_ratio(x_p), log_ratio(x_q)).item() == pytest.approx(value, abs=1e-12)


# -- the objectives: values on known logits -------------------------------------------------
def test_fgan_losses_on_known_logits():
    real, fake = torch.tensor([0.0, 1.0]), torch.tensor([0.5])
    kl = FGAN(KL())
    assert kl.d_loss(real, fake).item() == pytest.approx(math.exp(-0.5) - 0.5, abs=1e-6)  # E_Q[e^{T-1}] - E_P[T]
    assert kl.g_loss(fake).item() == pytest.approx(-math.exp(-0.5), abs=1e-6)
    assert FGAN(KL(), generator_loss="alternative").g_loss(fake).item() == pytest.approx(-0.5)


def test_fgan_with_the_gan_divergence_is_the_gan():
    torch.manual_seed(0)
    real, fake = torch.randn(64, 1) * 3, torch.randn(64, 1) * 3
    assert torch.allclose(FGAN(GAN()).d_loss(real, fake), Minimax().d_loss(real, fake), atol=1e-6)
    assert torch.allclose(FGAN(GAN()).g_loss(fake), Minimax().g_loss(fake), atol=1e-6)
    assert torch.allclose(FGAN(GAN(), "alternative").g_loss(fake), NonSaturating().g_loss(fake), atol=1e-6)


def test_least_squares_hinge_and_boundary_seeking_values():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.5])
    assert LeastSquares().d_loss(real, fake).item() == pytest.approx(0.5 * 0.5 + 0.5 * 0.25)
    assert LeastSquares().g_loss(fake).item() == pytest.approx(0.5 * 0.25)
    assert LeastSquares(a=-1, b=1, c=0).d_loss(real, fake).item() == pytest.approx(0.5 * 0.5 + 0.5 * 2.25)
    assert Hinge().d_loss(torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])).item() == pytest.approx(0.25 + 0.75)
    assert Hinge().g_loss(torch.tensor([-2.0, 0.5])).item() == pytest.approx(0.75)
    d = 0.2  # BGAN: 1/2 (log D - log(1 - D))^2; its critic is the minimax GAN's
    assert BoundarySeeking().g_loss(logit(d)).item() == pytest.approx(0.5 * math.log(d / (1 - d)) ** 2, rel=1e-6)
    assert torch.equal(BoundarySeeking().d_loss(logit(0.9), logit(d)), Minimax().d_loss(logit(0.9), logit(d)))


def test_one_sided_label_smoothing_targets_real_only():
    real, fake = logit(0.8), logit(0.3)
    expected = -(0.9 * math.log(0.8) + 0.1 * math.log(0.2)) - math.log(1 - 0.3)  # fake target stays 0
    for cls in (Minimax, NonSaturating, BoundarySeeking):
        assert cls(label_smoothing=0.1).d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    unsmoothed = -math.log(0.8) - math.log(0.7)
    assert Minimax(label_smoothing=0.0).d_loss(real, fake).item() == pytest.approx(unsmoothed, rel=1e-6)
    assert build(compose_config("loss=nsgan", "loss.label_smoothing=0.1").loss, "nsgan").label_smoothing == 0.1


def test_r1_on_a_linear_critic_is_gamma_half_squared_norm():
    w = nn.Parameter(torch.randn(3, 4, 4))
    critic = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731
    real, fake = torch.randn(16, 3, 4, 4), torch.randn(16, 3, 4, 4)
    loss = build(compose_config("loss=hinge", "loss.r1_gamma=10.0").loss, "hinge")
    regs = loss.regularizers(critic, real, fake)
    assert set(regs) == {"r1"}
    assert torch.allclose(regs["r1"], 5.0 * w.pow(2).sum(), rtol=1e-5)
    regs["r1"].backward()
    assert torch.allclose(w.grad, 10.0 * w.detach(), rtol=1e-5)  # the penalty trains the critic
    both = build(compose_config("loss=wgan_gp", "loss.r1_gamma=1.0").loss, "wgan_gp").regularizers(critic, real, fake)
    assert set(both) == {"gp", "r1"}
    assert Minimax().regularizers(critic, real, fake) == {}


def test_bad_settings_are_clear_errors():
    cases = [
        (["loss=gan", "loss.label_smoothing=1.0"], r"loss.label_smoothing=1.0: must be in \[0, 1\)"),
        (["loss=hinge", "loss.r1_gamma=-1"], r"loss.r1_gamma=-1: must be >= 0"),
        (["loss=wgan", "loss.clip=0"], r"loss.clip=0: must be > 0"),
        (["loss=fgan_alpha", "loss.divergence.alpha=1"], r"loss.divergence.alpha=1: must be finite and not 0 or 1"),
        (["loss=fgan_jensen_shannon_weighted", "loss.divergence.pi=1.5"], r"divergence.pi=1.5: must be in \(0, 1\)"),
        (["loss=fgan_kl", "loss.generator_loss=both"], r"loss.generator_loss=both: valid: saturating, alternative"),
        (["loss=wgan", "+loss.label_smoothing=0.1"], r"loss=wgan"),  # a key the objective does not have
    ]
    for overrides, message in cases:
        with pytest.raises(GenrunError, match=message):
            build(compose_config(*overrides).loss, overrides[0])
    with pytest.raises(ConfigCompositionException):  # without `+`, Hydra rejects the unknown key itself
        compose_config("loss=wgan", "loss.label_smoothing=0.1")


# -- settings every objective shares ----------------------------------------------------------
OBJECTIVES = [Minimax, NonSaturating, BoundarySeeking, LeastSquares, Hinge, Wasserstein, WGAN, WGANGP, FGAN]


@pytest.mark.parametrize("cls", OBJECTIVES, ids=lambda c: c.__name__)
def test_objective_settings_reach_the_objective(cls):
    def make(**kwargs) -> AdversarialLoss:
        return cls(KL(), **kwargs) if cls is FGAN else cls(**kwargs)

    critic = lambda x: x.pow(2).sum(1)  # noqa: E731
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    default = make()
    # a per-sample gradient penalty forbids batch norm in the critic (it couples a batch's samples)
    assert default.critic_norm == ("layer" if cls is WGANGP else "batch")
    assert default.r1_gamma == 0 and set(default.regularizers(critic, real, fake)) == ({"gp"} if cls is WGANGP else set())
    custom = make(critic_norm="none", r1_gamma=2.0)
    assert custom.critic_norm == "none" and custom.r1_gamma == 2.0
    assert torch.allclose(custom.regularizers(critic, real, fake)["r1"], 4 * real.pow(2).sum(1).mean())  # gamma/2 E||2x||^2


# -- WGAN: clipping and the paper's preset ----------------------------------------------------
def test_wgan_clips_every_critic_weight_after_its_update():
    assert WGAN().clip == 0.01 and WGANGP().lambda_gp == 10.0  # Arjovsky et al. 2017 and Gulrajani et al. 2017, alg. 1
    critic = nn.Linear(2, 2)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.3, -0.02], [-0.7, 0.01]]))
        critic.bias.copy_(torch.tensor([0.04, -0.2]))
    WGAN(clip=0.05).after_critic_step(critic)
    assert torch.allclose(critic.weight, torch.tensor([[0.05, -0.02], [-0.05, 0.01]]))
    assert torch.allclose(critic.bias, torch.tensor([0.04, -0.05]))
    Hinge().after_critic_step(critic)  # the others leave the critic alone
    assert torch.allclose(critic.bias, torch.tensor([0.04, -0.05]))


@pytest.mark.trains
def test_weight_clipping_bounds_every_critic_weight_after_real_steps(tmp_path):
    overrides = ["model=gan", "dataset=ring8", "loss=wgan", "trainer=debug", "eval=debug", "trainer.max_steps=3", "trainer.n_critic=2",
                 "trainer.sample_every=100", "model.generator.width=16", "model.discriminator.width=16"]
    cfg = compose_config(*overrides)
    fresh = build_pipeline(cfg, torch.device("cpu")).discriminator
    assert max(p.abs().max().item() for p in fresh.parameters()) > 0.1  # so clipping has work to do
    run(cfg, tmp_path)
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    pipeline.load_state_dict(load_checkpoint(tmp_path / "checkpoints" / "last.pt")["pipeline"])
    params = list(pipeline.discriminator.parameters())
    assert all(p.abs().max().item() <= 0.01 for p in params)
    assert max(p.abs().max().item() for p in params) == pytest.approx(0.01)  # clipped, not merely small
    critic = nn.Linear(3, 2)
    WGAN(clip=0.05).after_critic_step(critic)
    bound = torch.tensor(0.05)  # 0.05 in float32, as clamp_ stores it
    assert all((p.abs() <= bound).all() for p in critic.parameters())


def test_wgan_experiment_is_the_papers_setup():
    for extra in ([], ["model=gan", "dataset=ring8"]):
        cfg = compose_config("experiment=wgan", *extra)
        assert cfg.loss._target_.endswith(".WGAN") and cfg.loss.clip == 0.01
        assert cfg.optimizer.generator._target_ == cfg.optimizer.discriminator._target_ == "torch.optim.RMSprop"
        assert cfg.optimizer.discriminator.lr == cfg.optimizer.generator.lr == 5e-5
        assert cfg.trainer.n_critic == cfg.model.n_critic == 5
    assert compose_config("experiment=wgan", "loss=hinge").loss._target_.endswith(".Hinge")  # the CLI still wins


# -- every objective trains ---------------------------------------------------------------------
TRAIN_CASES = [(name, ()) for name in losses_of_kind(("adversarial",))] + [
    ("fgan_alpha", ("loss.divergence.alpha=2.0",)),  # the alpha > 1 branch
    ("fgan_reverse_kl", ("loss.generator_loss=alternative",)),
    ("nsgan", ("loss.label_smoothing=0.1", "loss.r1_gamma=1.0")),
]


@pytest.mark.trains
@pytest.mark.parametrize("loss,extra", TRAIN_CASES, ids=["+".join((n, *e)) for n, e in TRAIN_CASES])
def test_every_objective_trains_ring8(tmp_path, loss, extra):
    cfg = compose_config(
        "model=gan", "dataset=ring8", f"loss={loss}", *extra, "trainer.device=cpu", "trainer.max_steps=200",
        "trainer.batch_size=64", "trainer.log_every=100", "trainer.sample_every=1000", "trainer.ckpt_every=1000",
        "model.generator.width=32", "model.generator.depth=2", "model.discriminator.width=32",
        "model.discriminator.depth=2",
    )
    metrics = run(cfg, tmp_path)
    assert metrics["step"] == 200
    losses = {k: v for k, v in metrics.items() if k.startswith("loss/")}
    assert {"loss/d", "loss/g"} <= set(losses) and all(math.isfinite(v) for v in losses.values())
    if "loss.r1_gamma=1.0" in extra:
        assert math.isfinite(metrics["r1"]) and metrics["r1"] > 0


# -- the generator side on data-side logits (BiGAN/ALI's encoder) ------------------------------
def test_generator_side_on_real_logits_follows_each_objectives_targets():
    v = logit(0.3)
    assert Minimax().g_loss_real(v).item() == pytest.approx(math.log(0.3), rel=1e-6)  # minimises log D(x)
    assert NonSaturating().g_loss_real(v).item() == pytest.approx(-math.log(0.7), rel=1e-6)  # -log(1 - D(x))
    assert BoundarySeeking().g_loss_real(v).item() == pytest.approx(0.5 * math.log(0.3 / 0.7) ** 2, rel=1e-6)
    real = torch.tensor([0.5, 2.0])
    assert LeastSquares().g_loss_real(real).item() == pytest.approx(0.5 * (0.25 + 4.0) / 2)  # target a = 0
    assert LeastSquares(a=-1, b=1, c=0.5).g_loss_real(real).item() == pytest.approx(0.5 * (1.0 + 6.25) / 2)
    assert Hinge().g_loss_real(real).item() == pytest.approx(1.25)
    assert WGAN().g_loss_real(real).item() == pytest.approx(1.25)
    assert FGAN(KL()).g_loss_real(real).item() == pytest.approx(1.25)  # E_P[T], T = v for KL
    alt = FGAN(KL(), generator_loss="alternative").g_loss_real(real).item()
    assert alt == pytest.approx((math.exp(-0.5) + math.exp(1.0)) / 2, rel=1e-6)  # E[f*(T)] = E[e^(T-1)]
    # inverted labels: the non-saturating G+E loss is the critic's loss with the pairs swapped
    fake = torch.tensor([-1.0, 0.3])
    for loss in (NonSaturating(), FGAN(KL(), generator_loss="alternative"), FGAN(GAN(), "alternative")):
        assert torch.allclose(loss.g_loss(fake) + loss.g_loss_real(real), loss.d_loss(fake, real), atol=1e-6)


@pytest.mark.parametrize("abc,expected", [((0.0, 1.0, 1.0), 0.5), ((-1.0, 1.0, 0.0), 0.0)])
def test_bigan_with_lsgan_uses_the_generator_targets(abc, expected):
    # a critic that outputs 0 everywhere: G+E pay 1/2 (0 - c)^2 on generator pairs and
    # 1/2 (0 - (a + b - c))^2 on encoder pairs (before the fix, (-1, 1, 0) gave 1, not 0)
    a, b, c = abc
    cfg = compose_config("model=bigan", "dataset=ring8", "model.arch=mlp", "model.z_dim=2", "loss=lsgan",
                         f"loss.a={a}", f"loss.b={b}", f"loss.c={c}", "trainer.device=cpu")
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    head = pipeline.discriminator.head[-1]
    nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)
    _, scalars = pipeline.generator_encoder_objective({"x": torch.randn(16, 2)})
    assert scalars["loss/g"].item() == pytest.approx(expected, abs=1e-7)
