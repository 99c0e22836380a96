"""Exact-likelihood families (Real NVP, NICE, PixelCNN) and the likelihood unit they share with the
VAE: closed forms (log-determinants against autograd's Jacobian, invertibility, the identity flow's
base density, normalised probabilities, PixelCNN's causality and blind spot), then tiny runs
(train, evaluate nll/bpd, sample, resume bit-exactly, bf16, one column in genrun-report) and the
bad-input lines."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from genrun.build import build_pipeline
from genrun.engine.checkpoint import load_checkpoint
from genrun.errors import GenrunError
from genrun.losses.likelihood import (
    bits_per_dim,
    dequantize,
    discrete_log_likelihood,
    from_levels,
    inverse_logit_transform,
    logistic_mixture_log_prob,
    logit_transform,
    sample_logistic_mixture,
    standard_logistic_log_prob,
    standard_normal_log_prob,
    to_levels,
)
from genrun.nets.couplings import Coupling, ResidualConditioner
from genrun.nets.flows import NICE, ActNorm, BatchNormFlow, RealNVP, Squeeze, conditioner_norm
from genrun.nets.masks import causal_mask, channel_mask, checkerboard_mask, colour_groups
from genrun.nets.pixelcnn import PixelCNN
from genrun.train import run
from tests.conftest import compose_config
from tests.test_training import assert_bitwise_equal

CPU = torch.device("cpu")


# -- closed forms: flows -----------------------------------------------------------------------
def perturbed(net: nn.Module, scale: float = 0.2) -> nn.Module:
    """The net in float64 with every parameter moved off its (identity) initialisation."""
    torch.manual_seed(0)
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
    return net


def jacobian_log_det(layer: nn.Module, x: torch.Tensor) -> float:
    """log |det J| of one example's map, by autograd."""
    shape = x.shape[1:]
    jac = torch.autograd.functional.jacobian(lambda v: layer(v.view(1, *shape))[0].flatten(), x[0].flatten())
    return float(torch.linalg.slogdet(jac)[1])


def st_net(channels: int) -> nn.Module:
    return ResidualConditioner(channels, 6, 1, conditioner_norm("batchnorm"))


LAYERS = {
    "checkerboard": lambda: Coupling(checkerboard_mask(4, 4, 1), st_net(2), (1, 2, 1, 1)),
    "channelwise": lambda: Coupling(channel_mask(4, 0), st_net(4), (1, 4, 1, 1)),
    "additive": lambda: Coupling(checkerboard_mask(4, 4, 0), ResidualConditioner(2, 6, 1, conditioner_norm("actnorm"),
                                                                                  outputs=1), None),
    "actnorm": lambda: ActNorm(2),
    "batchnorm": lambda: BatchNormFlow(2),
    "squeeze": Squeeze,
    "realnvp_actnorm": lambda: RealNVP((2, 4, 4), scales=2, width=6, blocks=1, checkerboard=2, channelwise=2, final=2),
    "realnvp_batchnorm": lambda: RealNVP((1, 8, 8), scales=3, width=6, blocks=1, norm="batchnorm", checkerboard=1,
                                         channelwise=1, final=2),
    "nice": lambda: NICE((2, 4, 4), couplings=4, width=12, depth=2),
}
CHANNELS = {"channelwise": 4, "realnvp_batchnorm": 1}


@pytest.mark.parametrize("name", LAYERS)
def test_log_det_matches_autograds_jacobian_and_the_inverse_inverts(name):
    layer = perturbed(LAYERS[name]())
    shape = (CHANNELS.get(name, 2), *((8, 8) if name == "realnvp_batchnorm" else (4, 4)))
    x = torch.randn(5, *shape, dtype=torch.float64)
    layer.train()
    layer(x)  # actnorm initialises, batch norm gathers running statistics
    layer.eval()
    y, log_det = layer(x)
    assert y.shape[0] == 5 and log_det.shape == (5,)
    assert log_det[0].item() == pytest.approx(jacobian_log_det(layer, x), abs=1e-8)
    assert torch.allclose(layer.inverse(y).reshape(x.shape), x, atol=1e-10)


@pytest.mark.parametrize("norm", ["actnorm", "batchnorm"])
def test_real_nvp_inverts_to_1e_5_in_float32(norm):
    torch.manual_seed(0)
    flow = RealNVP((1, 8, 8), scales=3, width=8, blocks=1, norm=norm)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(16, 1, 8, 8)
    flow.train()
    flow(x)
    flow.eval()
    z, _ = flow(x)
    assert z.shape == (16, 64)
    assert (flow.inverse(z) - x).abs().max() < 1e-5
    assert (flow(flow.inverse(z))[0] - z).abs().max() < 1e-5


def test_actnorm_initialises_once_from_its_first_batch():
    layer = ActNorm(3)
    x = 2.0 + 5.0 * torch.randn(64, 3, 4, 4)
    y, log_det = layer(x)
    assert y.mean((0, 2, 3)).abs().max() < 1e-5 and (y.std((0, 2, 3), unbiased=False) - 1).abs().max() < 1e-3
    assert bool(layer.initialized) and "initialized" in layer.state_dict()
    assert log_det[0].item() == pytest.approx(-16 * torch.log(x.std((0, 2, 3), unbiased=False)).sum().item(), rel=1e-4)
    before = layer.bias.detach().clone()
    layer(x + 100)  # no second initialisation
    assert torch.equal(layer.bias, before)


def test_batchnorm_flow_trains_on_batch_statistics_and_evaluates_on_running_ones():
    """The reason genrun defaults to actnorm: one example's density changes with the mode."""
    layer = BatchNormFlow(1)
    x = 3.0 + torch.randn(32, 1, 2, 2)
    _, train_log_det = layer(x)
    layer.eval()
    _, eval_log_det = layer(x)
    assert not torch.allclose(train_log_det, eval_log_det)


def test_logit_transform_log_det_and_inverse():
    y = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    z, log_det = logit_transform(y, 0.05)
    jac = torch.autograd.functional.jacobian(lambda v: logit_transform(v.view(1, 1, 2, 2), 0.05)[0].flatten(),
                                             y[0].flatten())
    assert log_det[0].item() == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-10)
    assert torch.allclose(inverse_logit_transform(z, 0.05), y, atol=1e-12)


class Identity(nn.Module):
    """A flow that is the identity: z = x, log |det| = 0."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.flatten(1), x.new_zeros(len(x))

    def inverse(self, z):
        return z.view(len(z), *self.shape)


def flow_pipeline(flow: nn.Module, **kwargs):
    from genrun.losses.likelihood import NegativeLogLikelihood
    from genrun.pipelines.flow import FlowPipeline

    adam = {"generator": lambda params: torch.optim.Adam(params)}
    return FlowPipeline(flow, NegativeLogLikelihood(), adam, CPU, data_range=(-1.0, 1.0), **kwargs)


@pytest.mark.parametrize("prior,base", [("gaussian", standard_normal_log_prob), ("logistic", standard_logistic_log_prob)])
def test_the_identity_flow_gives_the_base_density(prior, base):
    y = torch.rand(4, 1, 4, 4)
    plain = flow_pipeline(Identity((1, 4, 4)), logit_alpha=None, prior=prior)
    assert torch.allclose(plain.log_density(y), base(y.flatten(1)), atol=1e-5)
    logit = flow_pipeline(Identity((1, 4, 4)), logit_alpha=0.05, prior=prior)
    z, log_det = logit_transform(y, 0.05)
    assert torch.allclose(logit.log_density(y), base(z.flatten(1)) + log_det, atol=1e-4)
    fresh = flow_pipeline(RealNVP((1, 4, 4), scales=2, width=4, blocks=1), logit_alpha=None, prior=prior)
    fresh.flow.eval()  # couplings start as the identity, actnorm too before its first batch
    order = fresh.flow(torch.arange(16.0).view(1, 1, 4, 4))[0][0].long()  # squeezes and factoring only reorder
    assert torch.equal(fresh.flow(y)[0], y.flatten(1)[:, order])
    assert torch.allclose(fresh.log_density(y), base(y.flatten(1)), atol=1e-5)


def test_dequantisation_and_the_units():
    x = torch.tensor([[-1.0, 1.0, 0.0, 2 * 128 / 255 - 1]])
    k = to_levels(x, -1.0, 1.0, 256)
    assert k.tolist() == [[0, 255, 128, 128]] and torch.allclose(from_levels(k, -1.0, 1.0, 256)[0, :2], x[0, :2])
    y = dequantize(k, 256, torch.Generator().manual_seed(0))
    assert ((y * 256).floor().long() == k).all()  # y = (k + u) / 256 stays in k's bin
    # a uniform density on [0, 1]^D gives every 8-bit image probability 256^-D: 8 bits per dimension
    assert float(bits_per_dim(-discrete_log_likelihood(torch.zeros(1), 784, 256), 784)) == pytest.approx(8.0)
    assert to_levels(torch.tensor([-1.0, 1.0]), -1.0, 1.0, 2).tolist() == [0, 1]


def test_the_dequantised_bound_holds_and_is_tight_for_a_piecewise_constant_density():
    """p(y) = 2y on [0, 1], L = 2: P(k=0) = 1/4, P(k=1) = 3/4; E_u[log p] - log 2 <= log P (Jensen);
    for a density constant on each bin the bound is exact."""
    g = torch.Generator().manual_seed(0)
    for k, prob in ((0, 0.25), (1, 0.75)):
        y = dequantize(torch.full((200_000,), k), 2, g)
        bound = float(discrete_log_likelihood(torch.log(2 * y), 1, 2).mean())
        assert bound < math.log(prob)
    constant = torch.where(y < 0.5, torch.tensor(0.5), torch.tensor(1.5))  # P(0) = 0.25, P(1) = 0.75
    assert float(discrete_log_likelihood(torch.log(constant), 1, 2).mean()) == pytest.approx(math.log(0.75))


# -- closed forms: PixelCNN ---------------------------------------------------------------------
def test_mask_types_a_and_b_differ_only_at_the_centre():
    a = causal_mask(colour_groups(3, 3), colour_groups(3, 3), (3, 3), "A")
    b = causal_mask(colour_groups(3, 3), colour_groups(3, 3), (3, 3), "B")
    assert torch.equal(a[:, :, 0], torch.ones(3, 3, 3)) and torch.equal(a[:, :, 2], torch.zeros(3, 3, 3))
    assert torch.equal(a[:, :, 1, 2], torch.zeros(3, 3)) and torch.equal(a[:, :, 1, 0], torch.ones(3, 3))
    assert a[:, :, 1, 1].tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]  # R sees nothing, G sees R, B sees R and G
    assert b[:, :, 1, 1].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


def dependencies(net: nn.Module, shape: tuple[int, int, int]) -> torch.Tensor:
    """[C, H, W, C, H, W]: whether output (c, i, j) moves with input (c', i', j'), over a few inputs."""
    c, h, w = shape
    x = torch.randn(8, *shape, dtype=torch.float64, requires_grad=True)
    out = net(x).sum(2)  # [B, C, H, W]
    seen = torch.zeros(c, h, w, c, h, w, dtype=torch.bool)
    for ci, i, j in itertools.product(range(c), range(h), range(w)):
        (grad,) = torch.autograd.grad(out[:, ci, i, j].sum(), x, retain_graph=True)
        seen[ci, i, j] = grad.abs().sum(0) > 0
    return seen


def later(shape: tuple[int, int, int]) -> torch.Tensor:
    """[C, H, W, C, H, W]: whether input (c', i', j') comes at or after output (c, i, j) in the order."""
    c, h, w = shape
    order = torch.arange(h * w).view(h, w)
    out_pos, in_pos = order.view(1, h, w, 1, 1, 1), order.view(1, 1, 1, 1, h, w)
    out_c, in_c = torch.arange(c).view(c, 1, 1, 1, 1, 1), torch.arange(c).view(1, 1, 1, c, 1, 1)
    return (in_pos > out_pos) | ((in_pos == out_pos) & (in_c >= out_c))


@pytest.mark.parametrize("gated", [False, True], ids=["masked_A_then_B", "gated_stacks"])
@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "rgb"])
def test_pixelcnn_never_sees_the_current_or_a_later_value(gated, channels):
    """Perturbing pixel i (colour c) leaves the outputs of values before it unchanged: the
    gradient of every output with respect to every value at or after it is exactly zero."""
    torch.manual_seed(0)
    shape = (channels, 5, 5)
    net = PixelCNN(shape, params=3, width=12, layers=2, gated=gated, first_kernel=3, kernel=3, head=16).double()
    seen = dependencies(net, shape)
    assert not (seen & later(shape)).any()
    assert seen.any(dim=(3, 4, 5)).view(-1)[1:].all()  # and every output but the first value reads something


def test_the_gated_stacks_have_no_blind_spot_and_the_plain_net_has_one():
    torch.manual_seed(0)
    sees = {}
    for gated in (False, True):
        net = PixelCNN((1, 7, 7), params=1, width=8, layers=3, gated=gated, first_kernel=3, kernel=3, head=8).double()
        sees[gated] = dependencies(net, (1, 7, 7))[0, 4, 3, 0]  # output (4, 3) over the input pixels
    assert not sees[False][3, 5] and not sees[False][3, 6]  # above right: the blind spot
    assert sees[True][:4].all() and sees[True][4, :3].all()  # every earlier pixel within reach


def test_pixelcnn_outputs_of_a_row_do_not_change_when_the_rows_below_are_cropped():
    torch.manual_seed(0)
    for gated in (False, True):
        net = PixelCNN((3, 6, 5), params=2, width=6, layers=2, gated=gated, head=6)
        x = torch.randn(2, 3, 6, 5)
        assert torch.allclose(net(x[:, :, :3]), net(x)[..., :3, :], atol=1e-6)


def test_discretised_logistic_mixture_is_normalised_over_the_256_values():
    params = torch.randn(1, 1, 9, 1, 1) * torch.tensor([1.0, 1, 1, 0.5, 0.5, 0.5, 1, 1, 1]).view(1, 1, 9, 1, 1)
    values = torch.arange(256).view(256, 1, 1, 1)
    log_p = logistic_mixture_log_prob(params.expand(256, 1, 9, 1, 1), values, 256)
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-4)
    draws = sample_logistic_mixture(params.view(1, 9).expand(20000, 9), 256, torch.rand(20000, 2))
    empirical = torch.bincount(draws, minlength=256).float() / 20000
    assert (empirical - log_p.exp()).abs().sum() < 0.1  # total variation of the sampler vs the pmf


def pixelcnn_pipeline(shape, binarize="static", output="auto", **net):
    from genrun.losses.likelihood import NegativeLogLikelihood
    from genrun.pipelines.pixelcnn import PixelCNNPipeline

    def make(params: int) -> PixelCNN:
        return PixelCNN(shape, params=params, **{"width": 6, "layers": 2, "first_kernel": 3, "head": 8, **net})

    adam = {"generator": lambda params: torch.optim.Adam(params)}
    torch.manual_seed(0)
    return PixelCNNPipeline(make, NegativeLogLikelihood(), adam, CPU, data_range=(-1.0, 1.0), binarize=binarize,
                            output=output)


@pytest.mark.parametrize("gated", [False, True])
def test_pixelcnn_probabilities_of_every_binary_image_sum_to_one_and_sampling_draws_them(gated):
    pipeline = pixelcnn_pipeline((1, 2, 3), gated=gated)
    with torch.no_grad():
        for p in pipeline.net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    images = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=6))).view(64, 1, 2, 3)
    probs = pipeline.discrete_log_likelihood({"x": images}).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    samples = pipeline.sample(4000, torch.Generator().manual_seed(0))
    index = ((samples.view(4000, 6) > 0).long() * 2 ** torch.arange(5, -1, -1)).sum(1)
    empirical = torch.bincount(index, minlength=64).float() / 4000
    assert (empirical - probs).abs().sum() < 0.12  # total variation: samples follow the likelihood's order


@pytest.mark.parametrize("output", ["softmax", "logistic_mixture"])
def test_pixelcnn_probabilities_of_every_8_bit_value_sum_to_one(output):
    pipeline = pixelcnn_pipeline((1, 1, 1), binarize="none", output=output)
    with torch.no_grad():
        for p in pipeline.net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    images = from_levels(torch.arange(256).view(256, 1, 1, 1), -1.0, 1.0, 256)
    assert pipeline.discrete_log_likelihood({"x": images}).exp().sum().item() == pytest.approx(1.0, abs=1e-4)


def test_the_objectives_units_and_the_priors():
    from genrun.losses.likelihood import (
        NegativeLogLikelihood,
        bernoulli_pixels_log_prob,
        categorical_log_prob,
        sample_prior,
    )

    uniform = categorical_log_prob(torch.zeros(2, 1, 256, 3, 3), torch.zeros(2, 1, 3, 3, dtype=torch.long))
    assert torch.allclose(uniform, torch.full((2,), -9 * math.log(256)))
    sure = torch.full((1, 1, 256, 1, 1), -30.0)
    sure[0, 0, 7] = 30.0
    assert categorical_log_prob(sure, torch.tensor([[[[7]]]])).item() == pytest.approx(0.0, abs=1e-6)
    assert categorical_log_prob(sure, torch.tensor([[[[8]]]])).item() < -50
    logits, bits = torch.tensor([[[[0.0, 2.0]]]]), torch.tensor([[[[1, 0]]]])
    expected = math.log(0.5) + math.log(1 - 1 / (1 + math.exp(-2.0)))
    assert bernoulli_pixels_log_prob(logits, bits).item() == pytest.approx(expected)
    terms = NegativeLogLikelihood()(torch.tensor([-100.0, -300.0]), dims=50)
    assert terms["loss/nll"].item() == pytest.approx(200.0) and terms["loss"].item() == pytest.approx(4.0)
    assert terms["loss/bpd"].item() == pytest.approx(200 / (50 * math.log(2)))
    g = torch.Generator().manual_seed(0)
    gauss, logistic = (sample_prior(p, (200_000,), CPU, g) for p in ("gaussian", "logistic"))
    assert abs(gauss.var().item() - 1) < 0.02 and abs(logistic.var().item() - math.pi ** 2 / 3) < 0.05
    assert abs(logistic.mean().item()) < 0.02


def test_flow_samples_are_images_of_the_data_range():
    flow = flow_pipeline(RealNVP((1, 4, 4), scales=2, width=4, blocks=1), logit_alpha=0.05)
    samples = flow.sample(8, torch.Generator().manual_seed(0))
    assert samples.shape == (8, 1, 4, 4) and samples.min() >= -1 and samples.max() <= 1
    assert torch.equal(from_levels(to_levels(samples, -1.0, 1.0, 256), -1.0, 1.0, 256), samples)
    noise = flow.sample_noise(8, torch.Generator().manual_seed(0))  # a fresh flow only reorders: k = floor(256 y)
    y = inverse_logit_transform(flow.flow.inverse(noise["z"]), 0.05)
    assert torch.equal(flow.generate(noise), from_levels((y * 256).floor().clamp(max=255), -1.0, 1.0, 256))


def test_pixelcnn_sampling_is_a_function_of_its_noise():
    pipeline = pixelcnn_pipeline((3, 3, 3), binarize="none", output="logistic_mixture")
    noise = pipeline.sample_noise(5, torch.Generator().manual_seed(1))
    a, b = pipeline.generate(noise), pipeline.generate(noise)
    assert torch.equal(a, b) and a.shape == (5, 3, 3, 3)
    assert set(to_levels(a, -1.0, 1.0, 256).unique().tolist()) <= set(range(256))
    assert torch.equal(from_levels(to_levels(a, -1.0, 1.0, 256), -1.0, 1.0, 256), a)


# -- the families through the run ---------------------------------------------------------------
TINY = {  # small nets of each family (digits: 16 px)
    "realnvp": ["model=realnvp", "model.flow.width=8", "model.flow.blocks=1", "model.flow.checkerboard=2",
                "model.flow.channelwise=2", "model.flow.final=2"],
    "nice": ["model=nice", "model.flow.width=32", "model.flow.depth=2"],
    "pixelcnn": ["model=pixelcnn", "model.net.width=8", "model.net.layers=2", "model.net.head=16",
                 "model.net.first_kernel=3"],
    "vae": ["model=vae", "model.encoder.width=8", "model.decoder.width=8"],
}


def tiny(model: str, *extra: str) -> list[str]:
    return [*TINY[model], "trainer=debug", "eval=debug", "trainer.batch_size=16", "trainer.sample_every=100",
            "trainer.ckpt_every=100", "trainer.log_every=2", "trainer.sample_n=4", "features=none", *extra]


CASES = [  # (model, overrides, the keys it must report)
    ("realnvp", ["trainer.eval_every=2", "eval.best_by=bpd"], {"bpd", "nll"}),
    ("realnvp", ["model.flow.norm=batchnorm", "dataset.binarize=dynamic", "model.flow.scales=3"], {"nll"}),
    ("nice", [], {"bpd", "nll"}),
    ("pixelcnn", ["dataset.binarize=static"], {"nll"}),
    ("pixelcnn", ["model.net.gated=false", "model.output=logistic_mixture", "trainer.precision=bf16"], {"bpd", "nll"}),
    ("realnvp", ["trainer.precision=bf16"], {"bpd", "nll"}),
]


@pytest.mark.trains
@pytest.mark.parametrize("model,extra,keys", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_family_trains_reports_its_likelihood_and_round_trips(tmp_path, model, extra, keys):
    result = run(compose_config(*tiny(model, "trainer.max_steps=4", *extra)), tmp_path)
    assert math.isfinite(result["loss/nll"]) and math.isfinite(result["loss/bpd"])
    assert keys <= set(result) and keys <= set(result["protocol"]["metrics"])
    assert all(result["directions"][k] == "lower" for k in keys)
    protocol = result["protocol"]["metrics"]["nll"]
    assert protocol["dims"] == 256 and protocol["split"] == "test" and "k" not in protocol
    if "bpd" in keys:
        assert protocol["levels"] == 256 and 0 < result["bpd"] < 12  # untrained: 8 to 10 bits
        assert result["bpd"] == pytest.approx(result["nll"] / (256 * math.log(2)))
    else:  # binarised: nats per image; bpd says why it is not there
        assert protocol["levels"] == 2 and 0 < result["nll"] < 2 * 256 * math.log(2)
        assert "nats per image" in result["protocol"]["skipped"]["bpd"]
    assert (tmp_path / "samples" / "step_4.png").is_file()
    if "trainer.eval_every=2" in extra:
        assert result["best"]["key"] == "bpd" and (tmp_path / "checkpoints" / "best.pt").is_file()
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    from omegaconf import OmegaConf

    rebuilt = build_pipeline(OmegaConf.create(ckpt["config_raw"]), CPU)
    rebuilt.load_state_dict(ckpt["pipeline"])
    assert assert_bitwise_equal(rebuilt.state_dict(), ckpt["pipeline"]) > 4


@pytest.mark.trains
@pytest.mark.parametrize("model", ["realnvp", "pixelcnn"])
def test_family_resumes_bit_exactly(tmp_path, model):
    """Real NVP: actnorm initialised at step 1 stays initialised; both: dequantisation draws, data order."""
    from genrun.task import resume_config

    common = tiny(model, "trainer.batch_size=64", "trainer.log_every=3")
    straight, half = tmp_path / "straight", tmp_path / "half"
    run(compose_config(*common, "trainer.max_steps=6", "metrics=[nll]"), straight)
    run(compose_config(*common, "trainer.max_steps=3", "metrics=[nll]"), half)
    checkpoint = load_checkpoint(half / "checkpoints" / "last.pt")
    run(resume_config(checkpoint["config_raw"], ["trainer.max_steps=6"], str(half)), half, checkpoint)
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (straight, half))
    assert a["step"] == b["step"] == 6 and a["data"] == b["data"]
    keys = ("pipeline", "rng", "sample_noise")
    assert assert_bitwise_equal({k: a[k] for k in keys}, {k: b[k] for k in keys}) > 4


@pytest.mark.trains
def test_the_vae_reports_its_iwae_bound_in_the_same_unit(tmp_path):
    """Binarised: nll is -iwae (the same k, seed and examples); 8-bit: bpd of the continuous Bernoulli
    through the dequantisation, as for the flows."""
    binary = run(compose_config(*tiny("vae", "dataset.binarize=dynamic", "metrics=[iwae,nll]", "trainer.max_steps=2")),
                 tmp_path / "binary")
    assert binary["nll"] == pytest.approx(-binary["iwae"], rel=1e-9)
    assert binary["protocol"]["metrics"]["nll"]["k"] == 10 and "IWAE" in binary["protocol"]["metrics"]["nll"]["likelihood"]
    grey = run(compose_config(*tiny("vae", "metrics=[bpd,nll]", "trainer.max_steps=2")), tmp_path / "grey")
    assert 0 < grey["bpd"] < 20 and grey["bpd"] == pytest.approx(grey["nll"] / (256 * math.log(2)))
    assert "dequantised" in grey["protocol"]["metrics"]["bpd"]["likelihood"]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """A flow, a PixelCNN and a VAE on the same binarised digits, each with nll (nats per image)."""
    root = tmp_path_factory.mktemp("likelihoods")
    for model, extra in (("realnvp", []), ("pixelcnn", []), ("vae", ["metrics=[auto,nll]"])):
        run(compose_config(*tiny(model, "dataset.binarize=static", "trainer.max_steps=2", *extra)), root / model)
    return root


@pytest.mark.trains
def test_genrun_report_puts_a_flow_a_pixelcnn_and_a_vae_in_one_column(three_runs, capsys):
    from genrun.report import report_command

    rows = report_command([str(three_runs), "--sort", "nll"])
    assert {row["folder"] for row in rows} == {"realnvp", "pixelcnn", "vae"}
    assert all(math.isfinite(float(row["nll"])) for row in rows)
    assert [float(row["nll"]) for row in rows] == sorted(float(row["nll"]) for row in rows)  # lower is better
    assert "nll" in capsys.readouterr().out


@pytest.mark.trains
def test_genrun_eval_and_genrun_sample_read_a_pixelcnn_run(three_runs, tmp_path):
    from genrun.eval_command import eval_command
    from genrun.sample import sample_command

    folder = three_runs / "pixelcnn"
    (written,) = eval_command(str(folder), device="cpu")
    evaluated, trained = json.loads(written.read_text()), json.loads((folder / "metrics.json").read_text())
    assert evaluated["nll"] == pytest.approx(trained["nll"], rel=1e-12)
    out = sample_command(str(folder), n=4, out=str(tmp_path / "s.pt"))
    samples = torch.load(out)
    assert samples.shape == (4, 1, 16, 16) and set(samples.unique().tolist()) <= {-1.0, 1.0}


BAD = [
    (["model=dcgan", "metrics=[bpd]"], r"metrics=bpd with model=\w+: GANPipeline gives no likelihood of images"),
    (["model=vae", "metrics=[nll]", "model.likelihood=bernoulli"], r"metrics=nll with model=\w+: .*no probability of "
                                                                    r"discrete pixels"),
    (["model=pixelcnn", "dataset.binarize=static", "model.output=softmax"], r"model.output=softmax models 8-bit "
                                                                            r"pixels, but dataset.binarize=static"),
    (["model=pixelcnn", "model.output=logistic_mixture", "dataset.binarize=static"], r"model.output=logistic_mixture"),
    (["model=pixelcnn", "model.output=bernoulli"], r"model.output=bernoulli models binary pixels, but this data has "
                                                   r"8-bit ones: set dataset.binarize=dynamic"),
    (["model=realnvp", "dataset.image_size=20", "model.flow.scales=4"], r"model.flow.scales=4 squeezes 20x20 images 3 "
                                                                        r"time\(s\), which needs sides divisible by 8"),
    (["model=realnvp", "model.flow.norm=layer"], r"model.flow.norm='layer': valid: actnorm, batchnorm"),
    (["model=nice", "dataset=ring8"], r"this family models discrete pixels: it needs images"),
    (["model=realnvp", "loss=nsgan"], r"does not train with loss=\w+ \(its kind is adversarial\); valid losses for "
                                      r"\w+: nll$"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_input_is_one_line_before_training(tmp_path, overrides, message):
    with pytest.raises(GenrunError, match=message) as info:
        run(compose_config(*overrides, "trainer=debug", "eval=debug"), tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_pixelcnn_measures_samples_only_on_request():
    from genrun.build import default_metric_names

    assert default_metric_names(compose_config("model=pixelcnn")) == ["bpd", "nll"]
    assert default_metric_names(compose_config("model=realnvp"))[:2] == ["bpd", "nll"]
    assert "fid" in default_metric_names(compose_config("model=realnvp"))


@pytest.mark.trains
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None and
                    shutil.which("torchrun") is None, reason="torchrun (torch's launcher) is not on the PATH")
def test_real_nvp_under_torchrun_keeps_every_process_in_step(tmp_path):
    """Two gloo processes: actnorm initialises from the global batch (each process sees half of it),
    so both hold the same weights after training."""
    from tests.test_distributed import torchrun

    torchrun(*tiny("realnvp", "trainer.max_steps=3", "trainer.batch_size=8", "metrics=[nll]"),
             f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["weights_in_sync"] is True and math.isfinite(metrics["nll"])
