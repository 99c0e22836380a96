"""The importance-weighted bound (Burda et al. 2016) of the VAE family, and its metric."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from genrun.build import build_data, build_pipeline
from genrun.losses.elbo import ELBO, importance_weighted_bound
from genrun.pipelines.vae import VAEPipeline
from genrun.train import run
from tests.conftest import compose_config

CPU = torch.device("cpu")


class ExactPosterior(nn.Module):
    """x -> the mean and log-variance of p(z | x) of the linear-Gaussian model below (exactly)."""

    def __init__(self, w: float, sigma: float) -> None:
        super().__init__()
        precision = 1 + w**2 / sigma**2
        self.gain = nn.Parameter(torch.tensor((w / sigma**2) / precision))
        self.logvar = -math.log(precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = self.gain * x
        return torch.cat([mu, torch.full_like(mu, self.logvar)], 1)


class Linear(nn.Module):
    """z -> w z: with p(z) = N(0, 1) and p(x | z) = N(w z, sigma^2), p(x) = N(0, w^2 + sigma^2)."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w, self.shape = nn.Parameter(torch.tensor(w)), (1,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.w * z


def linear_gaussian_vae(w: float, sigma: float) -> VAEPipeline:
    sgd = {role: lambda params: torch.optim.SGD(params, lr=0.0) for role in ("encoder", "decoder")}
    pipeline = VAEPipeline(ExactPosterior(w, sigma), Linear(w), ELBO(), sgd, CPU, z_dim=1, likelihood="gaussian")
    with torch.no_grad():
        pipeline.log_scale.value.fill_(math.log(sigma))
    return pipeline


def test_with_the_exact_posterior_the_bound_is_the_log_likelihood_for_every_k():
    w, sigma = 2.0, 0.5
    pipeline = linear_gaussian_vae(w, sigma)
    x = torch.tensor([[-1.5], [0.0], [0.7], [3.0]])
    exact = torch.distributions.Normal(0.0, math.sqrt(w**2 + sigma**2)).log_prob(x).squeeze(1)
    for k in (1, 7, 300):
        bound = pipeline.importance_weighted_bound({"x": x}, k, torch.Generator().manual_seed(k))
        assert torch.allclose(bound, exact, atol=1e-5), (k, bound, exact)


def test_a_wrong_posterior_gives_a_bound_below_the_log_likelihood_that_tightens_with_k():
    w, sigma = 2.0, 0.5
    pipeline = linear_gaussian_vae(w, sigma)
    with torch.no_grad():
        pipeline.encoder.gain.mul_(0.3)  # q(z | x) no longer the posterior
    x = torch.tensor([[-1.5], [0.7], [3.0]]).repeat(400, 1)  # means over many draws: the expectations
    exact = torch.distributions.Normal(0.0, math.sqrt(w**2 + sigma**2)).log_prob(x).squeeze(1).mean()
    bounds = [float(pipeline.importance_weighted_bound({"x": x}, k, torch.Generator().manual_seed(0)).mean())
              for k in (1, 10, 200)]
    assert bounds[0] < bounds[1] < bounds[2] < float(exact)
    assert float(exact) - bounds[2] < 0.25 * (float(exact) - bounds[0])  # most of the gap closed


def test_the_bound_reduces_log_mean_exp():
    log_w = torch.log(torch.tensor([[1.0, 4.0], [3.0, 2.0]]))  # k = 2 samples of 2 examples
    assert torch.allclose(importance_weighted_bound(log_w), torch.log(torch.tensor([2.0, 3.0])))


@pytest.mark.trains
@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_a_trained_vae_bound_is_above_its_elbo_and_grows_with_k(model, tmp_path):
    cfg = compose_config(f"model={model}", "trainer=debug", "trainer.max_steps=200", "trainer.batch_size=32",
                         "eval=debug", "dataset.binarize=static", "model.encoder.width=8", "model.decoder.width=8",
                         "metrics=[auto,iwae]",
                         "trainer.log_every=100", "trainer.sample_every=1000", "trainer.ckpt_every=1000")
    # 200 steps: past the first steps' collapsed posterior (q = p(z)), where every k gives one value
    pipeline, data = build_pipeline(cfg, CPU), build_data(cfg)
    run(cfg, tmp_path)
    pipeline.load_state_dict(torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["pipeline"])
    held_out = {k: v[:64] for k, v in data.examples(64, "test").items()}
    bound = {k: float(pipeline.importance_weighted_bound(held_out, k, torch.Generator().manual_seed(1)).mean())
             for k in (1, 10, 100)}
    elbo = float(sum(pipeline.importance_weighted_bound(held_out, 1, torch.Generator().manual_seed(s)).mean()
                     for s in range(20)) / 20)  # the ELBO's Monte Carlo estimate
    assert all(math.isfinite(v) for v in bound.values())
    assert bound[1] < bound[10] < bound[100] and bound[100] > elbo
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iwae"] > metrics["elbo"]  # k = 10 (eval=debug) against a one-sample ELBO
    assert metrics["protocol"]["metrics"]["iwae"]["k"] == 10
    assert "bernoulli" in metrics["protocol"]["metrics"]["iwae"]["likelihood"]


@pytest.mark.trains
def test_families_without_a_bound_skip_it_with_the_reason(tmp_path):
    cfg = compose_config("model=gan", "dataset=ring8", "trainer=debug", "eval=debug", "metrics=[iwae,fid]")
    metrics = run(cfg, tmp_path)
    assert "iwae" not in metrics and "fid" in metrics
    assert "no likelihood bound" in metrics["protocol"]["skipped"]["iwae"]


@pytest.mark.trains
def test_checkpoints_are_chosen_on_the_validation_split_and_the_test_split_reports(tmp_path):
    """experiment=vae_mnist picked best.pt by IWAE on the split it then reported; with a validation
    split held out of training, selection reads it and the reported numbers read the test split."""
    preset = compose_config("experiment=vae_mnist")
    assert preset.eval.best_by == "iwae" and preset.dataset.validation > 0
    cfg = compose_config("model=vae", "trainer=debug", "trainer.max_steps=4", "trainer.eval_every=2", "eval=debug",
                         "dataset.binarize=dynamic", "dataset.validation=100", "eval.best_by=iwae", "metrics=[iwae]",
                         "model.encoder.width=8", "model.decoder.width=8")
    data = build_data(cfg)
    assert len(data.validation) == 100 and len(data.train) == 1438 - 100
    assert not any(torch.equal(v, t) for v in data.validation[:5] for t in data.train)  # held out of training
    metrics = run(cfg, tmp_path)
    assert metrics["best"]["split"] == "validation" and metrics["best"]["key"] == "iwae"
    assert metrics["protocol"]["held_out_split"] == "test"
    assert metrics["protocol"]["metrics"]["iwae"]["split"] == "test"
    assert metrics["protocol"]["metrics"]["iwae"]["examples"] == min(200, len(data.test))
