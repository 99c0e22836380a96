"""GAN tricks: PacGAN packing, spectral norm, generator EMA, feature matching, minibatch discrimination."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from hydra.errors import ConfigCompositionException
from torch import nn

from genrun.arguments import parse_args
from genrun.engine.checkpoint import load_checkpoint
from genrun.engine.updates import Updater, train_step
from genrun.errors import GenrunError
from genrun.losses.adversarial import WGANGP, NonSaturating
from genrun.losses.penalties import gradient_penalty
from genrun.nets import conv, mlp
from genrun.nets.layers import MinibatchDiscrimination
from genrun.pipelines.gan import GANPipeline, feature_matching_loss, pack_samples
from genrun.sample import KEYS, USAGE, sample_command
from genrun.saved_runs import load_run
from genrun.schema import check_ranges
from genrun.train import run
from tests.conftest import compose_config, run_cli, tiny_overrides
from tests.test_training import assert_bitwise_equal

ADAM = {"generator": functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
        "discriminator": functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))}
IMAGE = [1, 16, 16]


def stream(x: torch.Tensor, batch: int):
    """An endless next_batch() over `x` in order (no shuffling needed for these checks)."""
    state = {"pos": 0}

    def next_batch() -> dict[str, torch.Tensor]:
        start = state["pos"] % (len(x) - batch + 1)
        state["pos"] += batch
        return {"x": x[start:start + batch]}

    return next_batch


def conv_pipeline(*, pack: int = 1, ema: float = 0.0, loss=None, **d_options) -> GANPipeline:
    torch.manual_seed(0)
    g = conv.Generator(8, IMAGE, width=8, out_range=(-1.0, 1.0))
    d = conv.Discriminator(IMAGE, width=8, norm="layer", pack=pack, **d_options)
    return GANPipeline(g, d, loss or NonSaturating(), ADAM, z_dim=8, pack=pack, ema=ema)


def images(n: int = 64) -> torch.Tensor:
    return torch.rand(n, *IMAGE, generator=torch.Generator().manual_seed(1)) * 2 - 1


# -- PacGAN ------------------------------------------------------------------------------------
def test_pack_concatenates_consecutive_samples_along_channels_and_features():
    x = torch.arange(6 * 2 * 3 * 3, dtype=torch.float32).view(6, 2, 3, 3)
    packed = pack_samples(x, 3)
    assert packed.shape == (2, 6, 3, 3)
    assert torch.equal(packed[1, 2:4], x[4]) and torch.equal(packed[0, :2], x[0])
    points = torch.randn(8, 2)
    assert torch.equal(pack_samples(points, 4)[1], points[4:].flatten())
    with pytest.raises(GenrunError, match=r"batch_size=6 is not divisible by model.pack=4"):
        pack_samples(x, 4)


def test_packed_discriminators_take_m_times_the_input():
    assert conv.Discriminator(IMAGE, width=8, pack=3).trunk[0].in_channels == 3
    assert conv.Discriminator([3, 16, 16], width=8, pack=2).trunk[0].in_channels == 6
    assert mlp.Discriminator([2], width=8, depth=2, pack=5).net[0].in_features == 10
    with pytest.raises(GenrunError, match="pack=0"):
        mlp.Discriminator([2], pack=0)


def test_pipeline_feeds_packed_batches_to_the_discriminator_in_both_phases():
    pipeline = conv_pipeline(pack=4, loss=WGANGP())
    seen = []
    pipeline.discriminator.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape)))
    scalars = train_step(pipeline, stream(images(), 16))
    # D phase: real, fake, gradient penalty on packed interpolates; G phase: fake
    assert seen == [(4, 4, 16, 16)] * 4
    assert torch.isfinite(scalars["gp"]) and torch.isfinite(scalars["loss/g"])
    with pytest.raises(GenrunError, match="batch_size=10 is not divisible by model.pack=4"):
        train_step(pipeline, stream(images(), 10))


def test_pack_mismatch_between_model_and_discriminator_is_an_error():
    d = conv.Discriminator(IMAGE, width=8, pack=1)
    with pytest.raises(GenrunError, match=r"model.pack=2 but the discriminator is built for pack=1"):
        GANPipeline(conv.Generator(8, IMAGE, width=8), d, NonSaturating(), ADAM, z_dim=8, pack=2)


def test_config_wires_pack_into_the_discriminator_and_rejects_gan_keys_on_a_vae():
    cfg = compose_config("model=dcgan", "model.pack=4")
    assert cfg.model.discriminator.pack == 4
    for key in ("model.pack=2", "model.feature_matching=true"):
        with pytest.raises(ConfigCompositionException):
            compose_config("model=vae", key)


# -- spectral norm -----------------------------------------------------------------------------
def largest_singular_values(net: nn.Module) -> list[tuple[float, float]]:
    """(sigma of the normalised weight, sigma of the raw weight) of every spectrally normed layer."""
    out = []
    for module in net.modules():
        if hasattr(module, "parametrizations"):
            w, raw = module.weight.flatten(1), module.parametrizations.weight.original.flatten(1)
            out.append((torch.linalg.matrix_norm(w, ord=2).item(), torch.linalg.matrix_norm(raw, ord=2).item()))
    return out


def test_spectral_norm_keeps_every_discriminator_layer_at_unit_largest_singular_value():
    pipeline = conv_pipeline(spectral_norm=True, minibatch_discrimination=4)
    next_batch = stream(images(), 16)
    for _ in range(20):
        train_step(pipeline, next_batch)
    d = pipeline.discriminator.eval()  # eval: no further power iteration, the weight as used
    sigmas = largest_singular_values(d)
    assert len(sigmas) == 3  # the 2 convs of the trunk, the linear head after minibatch discrimination
    for normed, raw in sigmas:
        assert abs(normed - 1) < 0.02, sigmas
        assert abs(raw - 1) > 0.1, sigmas  # the raw weights are not unit-norm by themselves
    mlp_d = mlp.Discriminator([2], width=16, depth=2, spectral_norm=True)
    assert len(largest_singular_values(mlp_d)) == 3


# -- EMA ---------------------------------------------------------------------------------------
def test_ema_follows_the_closed_form():
    decay, k = 0.8, 6
    pipeline = conv_pipeline(ema=decay)
    g, g_ema = pipeline.nets["generator"], pipeline.nets["generator_ema"]
    history = [[p.detach().clone() for p in g.parameters()]]
    hand = copy.deepcopy(history[0])
    next_batch = stream(images(), 16)
    for _ in range(k):
        train_step(pipeline, next_batch)
        history.append([p.detach().clone() for p in g.parameters()])
        hand = [decay * h + (1 - decay) * p for h, p in zip(hand, history[-1], strict=True)]
    for i, ema in enumerate(g_ema.parameters()):
        # ema_k = d^k p_0 + (1 - d) sum_{t=1..k} d^(k-t) p_t
        closed = decay**k * history[0][i] + sum((1 - decay) * decay ** (k - t) * history[t][i] for t in range(1, k + 1))
        torch.testing.assert_close(ema, closed, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ema, hand[i], rtol=1e-5, atol=1e-6)
        assert not ema.requires_grad
    assert any(not torch.equal(e, p) for e, p in zip(g_ema.parameters(), g.parameters(), strict=True))


def test_ema_batchnorm_statistics_are_those_of_the_averaged_weights():
    pipeline = conv_pipeline(ema=0.8)
    next_batch = stream(images(), 16)
    for _ in range(6):
        train_step(pipeline, next_batch)
    z = torch.randn(4096, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():  # the averaged weights normalised by their own batch statistics
        own_batch = copy.deepcopy(pipeline.nets["generator_ema"]).train()(z)
    live_stats = copy.deepcopy(pipeline.nets["generator_ema"])
    live_stats.load_state_dict({**live_stats.state_dict(), **dict(pipeline.generator.named_buffers())})
    with torch.no_grad():
        stale = live_stats.eval()(z)
    sampled = pipeline.generate({"z": z})  # re-estimates the copy's statistics first
    refreshed = [b.clone() for b in pipeline.nets["generator_ema"].buffers()]
    assert (sampled - own_batch).abs().mean() < 0.2 * (stale - own_batch).abs().mean()
    pipeline.ema_statistics_fresh = False
    pipeline.refresh_ema_statistics()  # depends only on the weights: bit-identical again
    assert all(torch.equal(a, b) for a, b in zip(refreshed, pipeline.nets["generator_ema"].buffers(), strict=True))
    train_step(pipeline, next_batch)
    assert not pipeline.ema_statistics_fresh  # an update makes them stale until the next sample or save


def test_samples_come_from_the_ema_generator():
    pipeline = conv_pipeline(ema=0.9)
    next_batch = stream(images(), 16)
    for _ in range(3):
        train_step(pipeline, next_batch)
    noise = pipeline.sample_noise(8, torch.Generator().manual_seed(0))
    with_ema = pipeline.generate(noise)
    pipeline.use_ema = False
    raw = pipeline.generate(noise)
    with pipeline.evaluating():
        assert torch.equal(with_ema, pipeline.nets["generator_ema"](noise["z"]))
        assert torch.equal(raw, pipeline.generator(noise["z"]))
    assert (with_ema - raw).abs().max() > 1e-4
    assert pipeline.nets["generator_ema"].training  # evaluating() restored its mode


def test_ema_off_adds_nothing_and_bad_decays_are_errors():
    assert set(conv_pipeline().nets) == {"generator", "discriminator"}
    with pytest.raises(GenrunError, match=r"ema=1.0: the EMA decay must be in \[0, 1\)"):
        conv_pipeline(ema=1.0)
    cfg = compose_config("trainer.ema=-0.5")
    with pytest.raises(GenrunError, match=r"trainer.ema=-0.5"):
        check_ranges(cfg)
    with pytest.raises(GenrunError, match="add_ema"):
        conv_pipeline(ema=0.9).add_ema("encoder")


def test_ema_can_be_switched_on_or_off_when_loading_a_checkpoint():
    plain, with_ema = conv_pipeline(), conv_pipeline(ema=0.99)
    train_step(plain, stream(images(), 16))
    with_ema.load_state_dict(plain.state_dict())  # switched on at resume: starts at the saved G
    for a, b in zip(with_ema.nets["generator_ema"].state_dict().values(), plain.generator.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    train_step(with_ema, stream(images(), 16))
    plain.load_state_dict(with_ema.state_dict())  # switched off: the saved average is dropped
    assert set(plain.state_dict()["nets"]) == {"generator", "discriminator"}
    with pytest.raises(GenrunError, match="checkpoint holds networks"):
        plain.load_state_dict({"nets": {"decoder": {}}, "optimizers": {}})


# -- feature matching --------------------------------------------------------------------------
def test_feature_matching_loss_on_a_hand_built_case():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0]])  # mean (1, 1)
    assert feature_matching_loss(real, fake).item() == pytest.approx(1.0 + 4.0)


def test_feature_matching_replaces_the_generator_loss_with_packed_features():
    # depth 0: the discriminator is one linear head, its features are its (packed) input
    d = mlp.Discriminator([2], depth=0, pack=2)
    pipeline = GANPipeline(mlp.Generator(4, [2], width=8, depth=1), d, NonSaturating(), ADAM, z_dim=4, pack=2,
                           feature_matching=True)
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 3.0]])  # packed: (1,0,0,1), (3,0,0,3)
    fake = torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 2.0], [2.0, 2.0]])  # packed: (0,0,0,0), (2,2,2,2)
    # packed means (2, 0, 0, 2) and (1, 1, 1, 1): 1 + 1 + 1 + 1
    assert pipeline.generator_loss(pack_samples(fake, 2), real).item() == pytest.approx(4.0)
    d_before = copy.deepcopy(pipeline.discriminator.state_dict())
    generator_phase = next(phase for phase in pipeline.phases if phase.name == "G")
    Updater().update(pipeline, generator_phase, {"x": real})
    assert all(torch.equal(v, pipeline.discriminator.state_dict()[k]) for k, v in d_before.items())
    with pytest.raises(GenrunError, match="feature_matching=true needs a discriminator with features"):
        GANPipeline(mlp.Generator(4, [2]), nn.Linear(2, 1), NonSaturating(), ADAM, z_dim=4, feature_matching=True)


def test_discriminator_output_is_the_head_of_its_features():
    x = images(4)
    d = conv.Discriminator(IMAGE, width=8, minibatch_discrimination=3).eval()
    assert d.features(x).shape == (4, 16, 4, 4)
    torch.testing.assert_close(d(x), d.head(d.features(x)).flatten(1))
    d = conv.Discriminator(IMAGE, width=8).eval()
    torch.testing.assert_close(d(x), d.head(d.features(x)).flatten(1))
    m = mlp.Discriminator(IMAGE, width=8, depth=2, minibatch_discrimination=3)
    assert m.features(x).shape == (4, 8)
    torch.testing.assert_close(m(x), m.net[-1](m.features(x)))


# -- minibatch discrimination ------------------------------------------------------------------
def test_minibatch_discrimination_counts_identical_samples():
    layer = MinibatchDiscrimination(in_features=6, kernels=4, kernel_dim=3)
    same = torch.randn(1, 6).expand(5, 6)
    out = layer(same)
    assert out.shape == (5, 6 + 4)
    assert torch.equal(out[:, :6], same)
    torch.testing.assert_close(out[:, 6:], torch.full((5, 4), 5.0))  # sum_j exp(0) = batch size
    far = torch.eye(5, 6) * 1e4  # every pair far apart: only the sample itself counts
    torch.testing.assert_close(layer(far)[:, 6:], torch.ones(5, 4))


def test_minibatch_discrimination_matches_the_paper_formula():
    layer = MinibatchDiscrimination(in_features=3, kernels=2, kernel_dim=4)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    m = torch.einsum("na,abc->nbc", x, layer.T)
    expected = torch.tensor([[sum(torch.exp(-(m[i, b] - m[j, b]).abs().sum()).item() for j in range(5))
                              for b in range(2)] for i in range(5)])
    torch.testing.assert_close(layer(x)[:, 3:], expected)


def test_minibatch_discrimination_supports_gradient_penalties():
    d = mlp.Discriminator([2], width=8, depth=2, minibatch_discrimination=4)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    gp = gradient_penalty(d, real, fake)
    gp.backward()  # a double backward through the kernels
    assert torch.isfinite(gp) and d.net[-1][0].T.grad.abs().sum() > 0


# -- checkpoints and sampling ------------------------------------------------------------------
RESUME_CASES = [
    ("dcgan", ["loss=wgan_gp", "trainer.n_critic=2", "trainer.ema=0.9", "model.pack=2",
               "model.discriminator.spectral_norm=true", "model.discriminator.minibatch_discrimination=4"]),
    ("gan", ["dataset=ring8", "trainer.batch_size=32", "trainer.ema=0.95", "model.pack=4",
             "model.discriminator.spectral_norm=true", "model.feature_matching=true"]),
]


@pytest.mark.parametrize("model,extra", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_resume_with_tricks_continues_bit_exactly(tmp_path, model, extra):
    from genrun.task import resume_config

    common = tiny_overrides(model, "trainer.batch_size=64", *extra, "trainer.ckpt_every=100",
                            "trainer.sample_every=100", "trainer.log_every=3")
    straight, half = tmp_path / "straight", tmp_path / "half"
    run(compose_config(*common, "trainer.max_steps=24"), straight)
    run(compose_config(*common, "trainer.max_steps=12"), half)
    checkpoint = load_checkpoint(half / "checkpoints" / "last.pt")
    run(resume_config(checkpoint["config_raw"], ["trainer.max_steps=24"], str(half)), half, checkpoint)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(half / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 24 and a["data"] == b["data"]
    nets = a["pipeline"]["nets"]
    assert "generator_ema" in nets
    assert any(k.endswith("weight.0._u") for k in nets["discriminator"])  # power iteration state is saved
    assert_bitwise_equal({k: a[k] for k in ("pipeline", "rng")}, {k: b[k] for k in ("pipeline", "rng")})


def test_genrun_sample_uses_the_ema_weights_unless_told_otherwise(tmp_path):
    run_dir = tmp_path / "run"
    run(compose_config(*tiny_overrides("gan", "dataset=ring8", "trainer.ema=0.9", "trainer.max_steps=6")), run_dir)
    for flag in ("true", "false"):
        proc = run_cli(f"run={run_dir}", "n=32", f"ema={flag}", f"out={tmp_path / flag}.pt", cwd=tmp_path,
                       entry="genrun-sample", check=True)
        assert "(EMA weights)" in proc.stdout if flag == "true" else "EMA" not in proc.stdout
    with_ema, raw = torch.load(tmp_path / "true.pt"), torch.load(tmp_path / "false.pt")
    pipeline, _ = load_run(str(run_dir))
    noise = pipeline.sample_noise(32, torch.Generator().manual_seed(0))
    with pipeline.evaluating():
        assert torch.equal(with_ema, pipeline.nets["generator_ema"](noise["z"]))
        assert torch.equal(raw, pipeline.nets["generator"](noise["z"]))
    assert not torch.equal(with_ema, raw)
    default = sample_command(str(run_dir), n=32, out=str(tmp_path / "default.pt"))
    assert torch.equal(torch.load(default), with_ema)


def test_genrun_sample_ema_true_on_a_run_without_ema_is_an_error(tmp_path):
    run(compose_config(*tiny_overrides("gan", "dataset=ring8", "trainer.max_steps=2")), tmp_path)
    with pytest.raises(GenrunError, match="ema=true but the run at .* kept no EMA weights"):
        sample_command(str(tmp_path), n=4, out=str(tmp_path / "x.pt"), ema=True)
    assert sample_command(str(tmp_path), n=4, out=str(tmp_path / "x.pt"), ema=False).exists()
    assert parse_args(["run=x", "ema=FALSE"], KEYS, USAGE)["ema"] is False
    with pytest.raises(GenrunError, match="ema='maybe' is not a valid boolean"):
        parse_args(["run=x", "ema=maybe"], KEYS, USAGE)
