"""Objectives against their closed forms and hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from genrun.errors import GenrunError
from genrun.losses.adversarial import WGANGP, Minimax, NonSaturating, Wasserstein
from genrun.losses.elbo import (
    ELBO,
    bernoulli_log_prob,
    continuous_bernoulli_log_norm,
    continuous_bernoulli_log_prob,
    continuous_bernoulli_mean,
    diagonal_gaussian_log_prob,
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


def test_wasserstein_generator_ascends_the_critic_on_its_samples():
    # Arjovsky et al. 2017, eq. 3: G minimises -E[V(G(z))]; logits with a nonzero mean show the sign
    fake = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = Wasserstein().g_loss(fake)
    assert loss.item() == -1.5
    loss.backward()
    assert torch.equal(fake.grad, torch.full((2,), -0.5))  # descending it raises V on the samples
    assert Wasserstein().g_loss_real(torch.tensor([1.0, 2.0])).item() == 1.5


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


def test_gradient_penalty_interpolates_between_real_and_fake_and_trains_the_critic():
    # critic 0.5 * s * ||x||^2 has gradient s * x_hat; x_hat = a * 2 + (1 - a) * (-1) = 3a - 1 in every pixel
    scale = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    critic = lambda x: 0.5 * scale * x.pow(2).flatten(1).sum(1)  # noqa: E731
    real = torch.full((64, 2, 3, 3), 2.0, dtype=torch.float64)
    fake = torch.full((64, 2, 3, 3), -1.0, dtype=torch.float64)
    torch.manual_seed(0)
    gp = gradient_penalty(critic, real, fake)
    torch.manual_seed(0)
    alpha = torch.rand(64, dtype=torch.float64)  # drawn in the data's dtype
    norm = scale.detach() * (3 * alpha - 1).abs() * math.sqrt(18)
    assert torch.allclose(gp, (norm - 1).pow(2).mean(), rtol=1e-12)
    gp.backward()  # the penalty's graph reaches the critic's parameters (create_graph=True)
    expected = (2 * (norm - 1) * norm / scale.detach()).mean()
    assert torch.allclose(scale.grad, expected, rtol=1e-12)


def test_gradient_penalty_stays_on_the_datas_device():
    # the meta device stands in for an accelerator: interpolation weights drawn on the CPU could not mix with the data
    w = torch.randn(3, device="meta")
    real, fake = torch.randn(4, 3, device="meta"), torch.randn(4, 3, device="meta")
    gp = gradient_penalty(lambda x: (x * w).sum(1), real, fake)
    assert gp.device.type == "meta" and gp.shape == ()


def test_gaussian_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.3, -0.7]])
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(400_000, 2)
    log_q = gaussian_log_prob(mu, std.log(), z)
    log_p = gaussian_log_prob(torch.zeros(2), torch.zeros(2), z)
    mc = (log_q - log_p).mean()
    assert torch.allclose(gaussian_kl_standard(mu, logvar)[0], mc, atol=5e-3)


def test_gaussian_log_prob_is_the_normal_density():
    # log N(x; m, s^2) = -(x - m)^2 / (2 s^2) - log s - log(2 pi) / 2, summed over dimensions
    mean, log_scale = torch.tensor([[0.3, -1.0, 2.0]]), torch.tensor([[0.0, 0.5, -0.7]])
    x = torch.tensor([[0.0, 1.5, 2.2], [1.0, -1.0, 0.0]])
    expected = torch.distributions.Normal(mean, log_scale.exp()).log_prob(x).sum(1)
    assert torch.allclose(gaussian_log_prob(mean, log_scale, x), expected, atol=1e-6)
    at_mean = gaussian_log_prob(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1))
    assert at_mean.item() == pytest.approx(-0.5 * math.log(2 * math.pi))  # the standard normal's peak


def test_bernoulli_log_prob_at_nonzero_logits():
    # log p(x) = x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)); sigmoid(log 4) = 0.8
    logits = torch.tensor([[math.log(4.0), -math.log(4.0), math.log(4.0)]])
    x = torch.tensor([[1.0, 0.0, 0.0]])
    expected = math.log(0.8) + math.log(0.8) + math.log(0.2)
    assert bernoulli_log_prob(logits, x).item() == pytest.approx(expected, rel=1e-6)


def test_bernoulli_log_prob_and_elbo_terms():
    logits, x = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    lp = bernoulli_log_prob(logits, x)
    assert torch.allclose(lp, torch.full((2,), 4 * math.log(0.5)))
    terms = ELBO(beta=2.0)(lp, torch.tensor([1.0, 3.0]))
    assert torch.allclose(terms["loss"], -lp.mean() + 2.0 * 2.0)
    assert torch.allclose(terms["vae/kl"], torch.tensor(2.0))
    assert torch.allclose(terms["vae/recon"], -lp.mean())
    plain = ELBO()(lp, torch.tensor([1.0, 3.0]))  # beta = 1: the VAE's own bound
    assert torch.allclose(plain["loss"], -lp.mean() + 2.0)
    for beta in (0.0, 0.5):  # beta < 1 is allowed (0 drops the KL)
        assert ELBO(beta=beta).beta == beta
    with pytest.raises(GenrunError, match=r"loss.beta=-1: must be >= 0"):
        ELBO(beta=-1)


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


@pytest.mark.parametrize("eta", [1e-4, 1e-3, 0.05, 0.0999, 0.1001, 0.5, -0.3, 3.0])
def test_continuous_bernoulli_normaliser_and_its_gradient_near_one_half(eta):
    """In float32 its gradient is eta/6 near 0 (it was 0 at eta = 1e-4), as torch's own
    ContinuousBernoulli computes it, and both sides of the series' boundary agree."""
    logits = torch.tensor([eta], dtype=torch.float32, requires_grad=True)
    continuous_bernoulli_log_norm(logits).sum().backward()
    reference = torch.tensor([eta], dtype=torch.float64, requires_grad=True)
    exact = torch.log(reference / torch.tanh(reference / 2))
    exact.sum().backward()
    assert logits.grad.item() == pytest.approx(reference.grad.item(), rel=1e-3, abs=1e-9)
    assert continuous_bernoulli_log_norm(logits.detach()).item() == pytest.approx(exact.item(), abs=1e-6)
    torch_cb = torch.distributions.ContinuousBernoulli(logits=logits.detach().clone().requires_grad_(True))
    log_c = torch_cb.log_prob(torch.tensor([0.5])) - torch_cb.logits * 0.5 + torch.nn.functional.softplus(torch_cb.logits)
    assert log_c.item() == pytest.approx(exact.item(), abs=1e-5)
    if abs(eta) < 1e-3:
        assert logits.grad.item() == pytest.approx(eta / 6, rel=1e-3)


@pytest.mark.parametrize("eta", [0.09, -0.0999, 0.05])
def test_continuous_bernoulli_series_is_the_closed_form_to_double_precision(eta):
    """Below |eta| = 0.1 the normaliser is log 2 + eta^2/12 - 7 eta^4/1440: its next term is below
    2e-10 there, so in float64 it equals eta / tanh(eta / 2) to 1e-9 (a wrong eta^4 term is off by 4e-8)."""
    x = torch.tensor([eta], dtype=torch.float64)
    exact = torch.log(x / torch.tanh(x / 2))
    assert continuous_bernoulli_log_norm(x).item() == pytest.approx(exact.item(), abs=1e-9)


def test_diagonal_gaussian_log_prob_is_the_normal_density():
    """Its 2 pi constant cancels inside the IWAE weights (prior minus posterior), so pin it here."""
    g = torch.Generator().manual_seed(3)
    z, mu, logvar = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    reference = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(diagonal_gaussian_log_prob(z, mu, logvar), reference, atol=1e-12)


def test_continuous_bernoulli_mean_near_zero_follows_its_series():
    # E[x] = 1 / (1 - e^-eta) - 1 / eta = 1/2 + eta/12 - eta^3/720 + ...: both branches agree at the switch (1e-2)
    eta = torch.tensor([-9e-3, -1e-3, 0.0, 5e-3, 9.99e-3, 1.001e-2, 0.03], dtype=torch.float64)
    series = 0.5 + eta / 12 - eta.pow(3) / 720
    assert torch.allclose(continuous_bernoulli_mean(eta), series, rtol=0, atol=2e-9)  # eta^3/720 < 1.4e-9 below 1e-2


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


@pytest.mark.parametrize("inputs", [torch.float32, torch.bfloat16])
def test_gradient_penalties_run_in_float32_under_autocast(inputs):
    # a matmul critic: under bf16 autocast its forward and backward would round w to 8 bits
    from genrun.losses.penalties import r1_penalty

    w = torch.randn(12, 1, generator=torch.Generator().manual_seed(0))
    critic = lambda x: x.flatten(1) @ w  # noqa: E731 (gradient w everywhere)
    real = torch.randn(8, 3, 2, 2).to(inputs)
    fake = torch.randn(8, 3, 2, 2).to(inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp, r1 = gradient_penalty(critic, real, fake), r1_penalty(critic, real)
    assert gp.dtype == r1.dtype == torch.float32
    assert gp.item() == pytest.approx(((w.norm() - 1) ** 2).item(), rel=1e-6)
    assert r1.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-6)

