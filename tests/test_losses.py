"""Objectives against their closed forms and hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from genrun.losses.adversarial import WGANGP, Minimax, NonSaturating
from genrun.losses.elbo import (
    ELBO,
    bernoulli_log_prob,
    continuous_bernoulli_log_norm,
    continuous_bernoulli_log_prob,
    continuous_bernoulli_mean,
    gaussian_kl_standard,
    gaussian_log_prob,
)
from genrun.losses.penalties import gradient_penalty


def logit(p: float) -> torch.Tensor:
    return torch.tensor([math.log(p / (1 - p))])


def test_minimax_value_at_the_optimal_discriminator_is_minus_log4():
    # p = q gives D* = 1/2 everywhere; max_D V(D, G) = -log 4 (Goodfellow et al. 2014, thm. 1)
    half = torch.zeros(1000)
    value = -Minimax().d_loss(half, half)  # V = E log D(x) + E log(1 - D(G(z)))
    assert torch.allclose(value, torch.tensor(-math.log(4.0)), atol=1e-6)


def test_minimax_and_non_saturating_generator_losses():
    d = 0.2
    fake = logit(d)
    assert torch.allclose(Minimax().g_loss(fake), torch.tensor(math.log(1 - d)), atol=1e-6)
    assert torch.allclose(NonSaturating().g_loss(fake), torch.tensor(-math.log(d)), atol=1e-6)
    assert torch.allclose(Minimax().d_loss(logit(0.9), fake), torch.tensor(-math.log(0.9) - math.log(1 - d)), atol=1e-6)


def test_wgan_losses_are_mean_differences():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.5, -0.5])
    loss = WGANGP()
    assert loss.d_loss(real, fake).item() == 0.0 - 2.0
    assert loss.g_loss(fake).item() == 0.0


def test_gradient_penalty_on_a_linear_critic_is_exact():
    # V(x) = <w, x> has gradient w everywhere: penalty = (||w|| - 1)^2 for any interpolate
    w = torch.randn(3, 4, 4)
    critic = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731
    real, fake = torch.randn(16, 3, 4, 4), torch.randn(16, 3, 4, 4)
    gp = gradient_penalty(critic, real, fake)
    assert torch.allclose(gp, (w.norm() - 1) ** 2, rtol=1e-5)
    reg = WGANGP(lambda_gp=10.0).regularizers(critic, real, fake)["gp"]
    assert torch.allclose(reg, 10 * (w.norm() - 1) ** 2, rtol=1e-5)


def test_gradient_penalty_mixes_per_sample_and_norms_the_whole_gradient():
    # critic 0.5 * ||x||^2 has gradient x_hat; with real = 1 and fake = 0 the interpolate is alpha.
    critic = lambda x: 0.5 * x.pow(2).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.ones(64, 2, 3, 3), torch.zeros(64, 2, 3, 3)
    torch.manual_seed(0)
    gp = gradient_penalty(critic, real, fake)
    torch.manual_seed(0)
    alpha = torch.rand(64)  # one alpha per sample (per-pixel alpha would draw 64*18 numbers)
    expected = (alpha * math.sqrt(18) - 1).pow(2).mean()
    assert torch.allclose(gp, expected, rtol=1e-5)


def test_gaussian_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.3, -0.7]])
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(400_000, 2)
    log_q = gaussian_log_prob(mu, std.log(), z)
    log_p = gaussian_log_prob(torch.zeros(2), torch.zeros(2), z)
    mc = (log_q - log_p).mean()
    assert torch.allclose(gaussian_kl_standard(mu, logvar)[0], mc, atol=5e-3)


def test_bernoulli_log_prob_and_elbo_terms():
    logits, x = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    lp = bernoulli_log_prob(logits, x)
    assert torch.allclose(lp, torch.full((2,), 4 * math.log(0.5)))
    terms = ELBO(beta=2.0)(lp, torch.tensor([1.0, 3.0]))
    assert torch.allclose(terms["loss"], -lp.mean() + 2.0 * 2.0)
    assert torch.allclose(terms["vae/kl"], torch.tensor(2.0))


@pytest.mark.parametrize("eta", [-6.0, -0.7, 0.0, 1e-4, 0.02, 2.5])
def test_continuous_bernoulli_is_a_density_with_its_mean(eta):
    # Loaiza-Ganem & Cunningham 2019: p(x | eta) = C(eta) lam^x (1 - lam)^(1 - x) on [0, 1] integrates to 1
    x = torch.linspace(0, 1, 200_001, dtype=torch.float64).view(-1, 1)
    logits = torch.full_like(x, eta)
    density = continuous_bernoulli_log_prob(logits, x).exp()
    assert torch.trapezoid(density, x.flatten()).item() == pytest.approx(1.0, abs=1e-6)
    mean = torch.trapezoid(density * x.flatten(), x.flatten()).item()
    assert continuous_bernoulli_mean(torch.tensor([eta], dtype=torch.float64)).item() == pytest.approx(mean, abs=1e-6)
    assert continuous_bernoulli_log_norm(torch.tensor([0.0])).item() == pytest.approx(math.log(2), abs=1e-6)


def test_dynamic_binarisation_draws_fresh_binary_batches_and_a_fixed_test_set():
    from genrun.data.binarize import binarize
    from genrun.data.bundle import Batches, DataBundle

    grey = torch.rand(64, 1, 4, 4) * 2 - 1
    data = binarize(DataBundle(train=grey, test=grey.clone()), "dynamic", (-1.0, 1.0))
    assert set(data.test.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(data.test, binarize(DataBundle(train=grey, test=grey.clone()), "dynamic", (-1, 1)).test)
    batches = Batches(data, 64, torch.device("cpu"), seed=0)
    first, second = batches()["x"], batches()["x"]
    assert set(first.unique().tolist()) == {-1.0, 1.0} and not torch.equal(first, second)  # same images, new draw
    static = binarize(DataBundle(train=grey), "static", (-1.0, 1.0))
    assert set(static.train.unique().tolist()) == {-1.0, 1.0}
    # the draw follows the intensity: P(pixel = high) = (x - low) / (high - low), here 0.75
    half = binarize(DataBundle(train=torch.full((64, 1, 8, 8), 0.5)), "dynamic", (-1.0, 1.0))
    draws = torch.stack([Batches(half, 64, torch.device("cpu"), 0)()["x"] for _ in range(20)])
    assert ((draws + 1) / 2).mean().item() == pytest.approx(0.75, abs=0.01)
