"""The encoder, conditional and code families (cgan, cvae, aae, bigan/ali, infogan) and the VAE's
end-of-run metrics: tiny models train on CPU, checkpoints round-trip and resume bit-exactly,
the objectives' closed forms hold, and incompatible choices are clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import Tensor

from genrun.build import (
    build,
    build_data,
    build_pipeline,
    check_model_accepts_loss,
    losses_of_kind,
    model_arguments,
)
from genrun.data.bundle import Batches, DataBundle
from genrun.engine.checkpoint import load_checkpoint
from genrun.engine.images import PALETTE, labelled_points, paired_rows, picture, square_indices
from genrun.engine.updates import Updater, train_step
from genrun.errors import GenrunError
from genrun.metrics.heldout import (
    best_match,
    code_confusion,
    code_information,
    linear_probe,
    matched_accuracy,
)
from genrun.nets.priors import Gaussian, Mixture, Uniform
from genrun.pipelines.infogan import categorical_mi_bound, continuous_mi_bound
from genrun.train import run
from tests.conftest import compose_config
from tests.test_training import assert_bitwise_equal

# every network of each family, shrunk for CPU tests
NETS = {
    "cgan": ("generator", "discriminator"),
    "cvae": ("encoder", "decoder"),
    "aae": ("encoder", "decoder", "discriminator"),
    "bigan": ("generator", "encoder", "discriminator"),
    "infogan": ("generator", "discriminator"),
    "vae": ("encoder", "decoder"),
}
FEATURES = {"cgan": ["model.features=16", "model.embed_dim=4"], "cvae": ["model.features=16", "model.embed_dim=4"],
            "bigan": ["model.features=16", "model.embed_dim=16", "model.z_dim=8"],
            "infogan": ["model.features=16", "model.z_dim=8"], "aae": [], "vae": []}


def tiny(model: str, *extra: str) -> list[str]:
    widths = [f"model.{net}.width=8" for net in NETS[model]]
    return [f"model={model}", "trainer=debug", "eval=debug", "trainer.batch_size=8", *widths, *FEATURES[model], *extra]


ENCODER_METRICS = {"recon_mse", "probe_accuracy"}
CASES = [  # (model, dataset, overrides, metrics it must report, pictures beside samples)
    ("cgan", "digits", [], set(), {"classes"}),
    ("cgan", "digits", ["loss=wgan_gp", "trainer.n_critic=2"], set(), {"classes"}),
    ("cgan", "ring8", ["model.arch=mlp"], {"modes"}, {"classes"}),
    ("cvae", "digits", [], {"elbo", "recon_mse"}, {"classes", "reconstructions"}),
    ("cvae", "ring8", ["model.arch=mlp"], {"elbo", "recon_mse"}, set()),
    ("aae", "digits", ["model.stochastic_encoder=true", "model.prior=uniform"], ENCODER_METRICS, {"reconstructions"}),
    ("aae", "ring8", ["model.arch=mlp", "model.prior=mixture", "model.z_dim=2", "loss=wgan_gp"],
     ENCODER_METRICS, {"latent"}),
    ("bigan", "digits", [], ENCODER_METRICS, {"reconstructions"}),
    ("bigan", "digits", ["model.stochastic_encoder=true", "loss=wgan_gp"], ENCODER_METRICS, {"reconstructions"}),
    ("bigan", "ring8", ["model.arch=mlp", "model.z_dim=2"], ENCODER_METRICS, {"latent"}),
    ("infogan", "digits", [], {"code_accuracy", "code_mi", "probe_accuracy"}, {"classes", "continuous0", "continuous1"}),
    ("infogan", "ring8", ["model.arch=mlp", "model.categorical=8", "model.learn_std=true", "loss=wgan_gp"],
     {"code_accuracy", "modes"}, {"classes"}),
    ("vae", "digits", [], {"elbo"} | ENCODER_METRICS, {"reconstructions"}),
    ("vae", "digits", ["dataset.binarize=dynamic"], {"elbo"} | ENCODER_METRICS, {"reconstructions"}),
    ("cvae", "digits", ["dataset.binarize=static"], {"elbo"}, {"classes"}),
    ("vae", "ring8", ["model.arch=mlp", "model.z_dim=2"], {"elbo"} | ENCODER_METRICS, {"latent"}),
]


@pytest.mark.parametrize("model,dataset,extra,metrics,pictures", CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_family_trains_evaluates_and_round_trips(tmp_path, model, dataset, extra, metrics, pictures):
    cfg = compose_config(*tiny(model, f"dataset={dataset}", "trainer.max_steps=4", "trainer.sample_every=100",
                               "trainer.ckpt_every=100", "trainer.log_every=2", *extra))
    result = run(cfg, tmp_path)
    losses = {k: v for k, v in result.items() if k.startswith(("loss/", "info/", "aae/", "vae/", "gp"))}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert result["step"] == 4 and metrics <= set(result)
    for key in ("probe_accuracy", "code_accuracy"):
        if key in result:
            assert 0.0 <= result[key] <= 1.0
    if "code_accuracy" in result:  # the protocol keeps the confusion behind the number
        kept = result["protocol"]["metrics"]["code_accuracy"]
        counts = torch.tensor(kept["counts"])
        assert counts.sum() == kept["examples"] and kept["match"]
        assert sum(counts[int(c), y] for c, y in kept["match"].items()) == round(result["code_accuracy"] * kept["examples"])
    if "code_mi" in result:
        ceiling = result["protocol"]["metrics"]["code_mi"]["ceiling_nats"]
        assert 0.0 <= result["code_mi"] <= ceiling + 1e-9 and ceiling == pytest.approx(math.log(10 if dataset == "digits" else 8))
    if dataset == "digits" and "probe_accuracy" in result:  # its floor: logistic regression on raw digits
        assert result["protocol"]["floor_of"]["probe_accuracy"] == "raw pixels"
        assert result["floor"]["probe_accuracy"] > (0.75 if "dataset.binarize=dynamic" in extra else 0.9)
    if "elbo" in result:
        assert math.isfinite(result["elbo"]) and result["recon_mse"] >= 0
        likelihood = result["protocol"]["metrics"]["elbo"]["likelihood"]
        if likelihood.startswith("bernoulli: log-probability"):  # of binarised pixels
            assert result["elbo"] < 0  # a log-probability minus a KL
    written = {p.name for p in (tmp_path / "samples").iterdir()}
    assert {"step_4.png", *(f"{name}_step_4.png" for name in pictures)} <= written
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    rebuilt = build_pipeline(OmegaConf.create(ckpt["config_raw"]), torch.device("cpu"))
    rebuilt.load_state_dict(ckpt["pipeline"])
    assert assert_bitwise_equal(rebuilt.state_dict(), ckpt["pipeline"]) > 4


RESUME_CASES = [
    ("cgan", ["loss=wgan_gp", "trainer.n_critic=2"]),  # the gradient penalty draws random alphas
    ("cvae", []),
    ("aae", ["model.stochastic_encoder=true", "model.prior=mixture", "model.z_dim=2"]),
    ("bigan", ["model.stochastic_encoder=true"]),
    ("infogan", ["model.learn_std=true"]),
]


@pytest.mark.parametrize("model,extra", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_family_resumes_bit_exactly(tmp_path, model, extra):
    # digits' 1,438 training images are 22 batches of 64: 26 steps cross an epoch boundary
    common = tiny(model, *extra, "trainer.batch_size=64", "trainer.ckpt_every=100", "trainer.sample_every=100",
                  "trainer.log_every=5")
    straight, half = tmp_path / "straight", tmp_path / "half"
    run(compose_config(*common, "trainer.max_steps=26"), straight)
    run(compose_config(*common, "trainer.max_steps=13"), half)
    checkpoint = load_checkpoint(half / "checkpoints" / "last.pt")
    from genrun.task import resume_config

    run(resume_config(checkpoint["config_raw"], ["trainer.max_steps=26"], str(half)), half, checkpoint)
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (straight, half))
    assert a["step"] == b["step"] == 26 and a["data"] == b["data"] and a["data"]["epoch"] >= 1
    keys = ("pipeline", "rng", "sample_noise")
    assert assert_bitwise_equal({k: a[k] for k in keys}, {k: b[k] for k in keys}) > 10


ADVERSARIAL_FAMILIES = ("cgan", "aae", "bigan", "infogan")


@pytest.fixture(scope="module")
def ring8() -> DataBundle:
    return build_data(compose_config("dataset=ring8"))


@pytest.fixture(scope="module")
def adversarial_losses() -> dict:
    return {name: compose_config(f"loss={name}").loss for name in losses_of_kind(("adversarial",))}


@pytest.mark.parametrize("model", ADVERSARIAL_FAMILIES)
def test_every_adversarial_loss_trains_every_adversarial_family(model, ring8, adversarial_losses):
    cfg = compose_config(*tiny(model, "dataset=ring8", "model.arch=mlp"))
    optimizers = build(cfg.optimizer, "optimizer")
    batches = Batches(ring8, 16, torch.device("cpu"), 0)
    for name, node in adversarial_losses.items():
        loss = build(node, name)
        torch.manual_seed(0)
        pipeline = build(model_arguments(cfg.model), model, loss=loss, optimizers=optimizers, device=torch.device("cpu"))
        scalars = [train_step(pipeline, batches) for _ in range(2)][-1]
        assert {"loss/d", "loss/g"} <= set(scalars), name
        assert all(torch.isfinite(v) for v in scalars.values()), (name, scalars)


# -- InfoGAN's information term ------------------------------------------------------------
def infogan_critic_grads(*extra: str) -> tuple[dict[str, Tensor | None], dict[str, Tensor]]:
    """Gradients after one discriminator phase whose adversarial loss is zeroed: only -lambda x L_I
    is left, so any gradient the critic's parameters receive comes from the information term."""
    torch.manual_seed(0)
    pipeline = build_pipeline(compose_config(*tiny("infogan", *extra)), torch.device("cpu"))
    pipeline.loss.d_loss = lambda real, fake: 0.0 * (real.sum() + fake.sum())
    loss, scalars = pipeline.discriminator_objective({"x": torch.randn(8, 1, 16, 16)})
    loss.backward()
    return {name: p.grad for name, p in pipeline.discriminator.named_parameters()}, scalars


def test_infogan_information_term_trains_the_shared_body_and_q_in_the_critic_phase():
    grads, scalars = infogan_critic_grads()
    assert {"loss/d", "info/cat", "info/cont"} <= set(scalars)
    body = [g for name, g in grads.items() if name.startswith("body.")]
    assert body and all(g is not None for g in body) and sum(g.abs().sum() for g in body) > 0
    assert all(g is not None and g.abs().sum() > 0 for name, g in grads.items() if name.startswith("q_head."))
    assert all(g is None or g.abs().sum() == 0 for name, g in grads.items() if name.startswith("d_head."))


@pytest.mark.parametrize("lambda_info,lambda_continuous", [(1.0, 0.0), (0.0, 1.0)])
def test_infogan_each_code_part_has_its_own_weight(lambda_info, lambda_continuous):
    grads, _ = infogan_critic_grads(f"model.lambda_info={lambda_info}", f"model.lambda_continuous={lambda_continuous}")
    out = grads["q_head.3.weight"]  # Q's last layer: rows [0, k) the categorical logits, then the continuous means
    cat, cont = out[:10].abs().sum(), out[10:].abs().sum()
    assert (cat > 0) == (lambda_info > 0) and (cont > 0) == (lambda_continuous > 0), (cat, cont)


def test_infogan_generator_phase_updates_g_alone_on_the_information_term():
    torch.manual_seed(0)
    pipeline = build_pipeline(compose_config(*tiny("infogan")), torch.device("cpu"))
    pipeline.loss.g_loss = lambda fake: 0.0 * fake.sum()
    before = {name: p.detach().clone() for name, p in pipeline.discriminator.named_parameters()}
    generator_phase = next(phase for phase in pipeline.phases if phase.name == "G")
    assert generator_phase.roles == ("generator",)
    scalars = Updater().update(pipeline, generator_phase, {"x": torch.zeros(8, 1, 16, 16)})
    assert set(scalars) == {"loss/g", "info/cat", "info/cont"}
    assert sum(p.grad.abs().sum() for p in pipeline.generator.parameters() if p.grad is not None) > 0
    assert all(torch.equal(p, before[name]) for name, p in pipeline.discriminator.named_parameters())
    assert set(pipeline.optimizers) == {"generator", "discriminator"}
    n_critic = sum(p.numel() for p in pipeline.discriminator.parameters())
    assert sum(p.numel() for group in pipeline.optimizers["discriminator"].param_groups for p in group["params"]) == n_critic


def test_infogan_with_weight_clipping_clips_the_critic_and_leaves_q_as_it_is():
    """WGAN's Lipschitz constraint is the critic's (body and D head); Q's head shares the body but
    is no critic: clipping it to 0.01 flattened its outputs."""
    torch.manual_seed(0)
    pipeline = build_pipeline(compose_config(*tiny("infogan", "loss=wgan")), torch.device("cpu"))
    before = {name: p.detach().clone() for name, p in pipeline.discriminator.named_parameters()}
    assert max(float(w.abs().max()) for n, w in before.items() if n.startswith("q_head.")) > 0.1
    critic_phase = next(phase for phase in pipeline.phases if phase.name == "D")
    Updater().update(pipeline, critic_phase, {"x": torch.randn(8, 1, 16, 16)})
    after = {name: p.detach() for name, p in pipeline.discriminator.named_parameters()}
    clip = pipeline.loss.clip
    assert all(float(w.abs().max()) <= clip for n, w in after.items() if n.startswith(("body.", "d_head.")))
    q_head = [n for n in after if n.startswith("q_head.")]
    assert max(float(after[n].abs().max()) for n in q_head) > 0.1  # unclipped: Adam moved it by ~lr only
    assert all(torch.allclose(after[n], before[n], atol=1e-3) for n in q_head)


# -- closed forms ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 10])
def test_infogan_mi_bound_of_a_perfect_q_is_the_code_entropy(k):
    codes = torch.arange(k).repeat(5)
    perfect = 50.0 * torch.nn.functional.one_hot(codes, k).float()
    assert categorical_mi_bound(perfect, codes).item() == pytest.approx(math.log(k), abs=1e-6)
    assert categorical_mi_bound(torch.zeros(len(codes), k), codes).item() == pytest.approx(0.0, abs=1e-6)


def test_continuous_mi_bound_is_entropy_plus_gaussian_log_likelihood():
    c = torch.rand(64, 3) * 2 - 1
    log_std = torch.full_like(c, -1.0)
    # exact means: log q = sum over 3 dims of (-log_std - log(2 pi) / 2); h(U[-1, 1]^3) = 3 log 2
    expected = 3 * (math.log(2) + 1.0 - 0.5 * math.log(2 * math.pi))
    assert continuous_mi_bound(c, log_std, c).item() == pytest.approx(expected, rel=1e-6)
    assert continuous_mi_bound(c + 1.0, log_std, c).item() < expected


def test_code_accuracy_matches_code_values_to_classes_one_to_one():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert matched_accuracy(torch.tensor([7, 7, 3, 3, 5, 5]), labels) == 1.0
    assert matched_accuracy(torch.tensor([5, 5, 3, 3, 3, 3]), labels) == pytest.approx(4 / 6)
    assert matched_accuracy(torch.zeros(6, dtype=torch.long), labels) == pytest.approx(2 / 6)


def test_code_confusion_shows_a_split_class_and_a_shared_code():
    """Class 0 split over codes 0 and 1, classes 1 and 2 sharing code 2: the counts say so, and
    the match pairs each code with at most one class."""
    confusion = code_confusion(torch.tensor([0, 1, 2, 2, 2, 2]), torch.tensor([0, 0, 1, 1, 2, 2]))
    assert confusion.tolist() == [[1, 0, 0], [1, 0, 0], [0, 2, 2]]
    match = best_match(confusion)
    assert match[0] == 0 and match[2] in (1, 2) and len(set(match.values())) == len(match)


def test_code_information_closed_forms():
    """I(x; c) = H(mean q) - mean H(q): log k for confident, equally used codes; 0 for one code or
    for the same soft q everywhere; log 2 for confident codes using 2 of 4 values equally, and
    for codes each torn between two values but using all four equally."""
    k, sure = 4, 30.0  # logits of sure - 0: q = 1 - 3e-13, entropies below 1e-11
    confident = sure * torch.eye(k, dtype=torch.float64).repeat(5, 1)
    assert code_information(confident).item() == pytest.approx(math.log(k))
    assert code_information(confident[[0] * 8]).item() == pytest.approx(0.0, abs=1e-10)
    assert code_information(torch.randn(1, k).repeat(8, 1)).item() == pytest.approx(0.0, abs=1e-6)
    assert code_information(confident[[0, 1, 0, 1]]).item() == pytest.approx(math.log(2))
    torn = torch.tensor([[sure, sure, 0, 0], [0, 0, sure, sure]], dtype=torch.float64)
    assert code_information(torn).item() == pytest.approx(math.log(4) - math.log(2))


def test_linear_probe_reads_separable_codes_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(3, (400,), generator=g)
    codes = torch.nn.functional.one_hot(y, 3).float() + 0.1 * torch.randn(400, 3, generator=g)
    assert linear_probe(codes[:300], y[:300], codes[300:], y[300:]) == 1.0
    noise = torch.randn(400, 3, generator=g)
    assert linear_probe(noise[:300], y[:300], noise[300:], y[300:]) < 0.6


def test_priors_sample_their_distributions():
    device = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    z = Gaussian(4).sample(20000, device, g)
    assert z.mean(0).abs().max() < 0.05 and (z.std(0) - 1).abs().max() < 0.05
    u = Uniform(3, -2.0, 1.0).sample(20000, device, g)
    assert u.min() >= -2 and u.max() <= 1 and (u.mean(0) + 0.5).abs().max() < 0.05
    prior = Mixture(2, components=10, radius=2.0, radial_std=0.5, tangential_std=0.1)
    points, k = prior.sample_labelled(20000, device, g)
    angle = k.float() * (2 * math.pi / 10)
    radial = points[:, 0] * angle.cos() + points[:, 1] * angle.sin()
    tangential = -points[:, 0] * angle.sin() + points[:, 1] * angle.cos()
    assert (radial.mean() - 2.0).abs() < 0.02 and (radial.std() - 0.5).abs() < 0.02
    assert tangential.mean().abs() < 0.01 and (tangential.std() - 0.1).abs() < 0.01
    assert torch.bincount(k, minlength=10).min() > 1800


# -- pictures ---------------------------------------------------------------------------------
def test_reconstruction_rows_put_each_input_above_its_reconstruction():
    top = torch.arange(64.0).view(64, 1, 1, 1)
    grid = paired_rows(top, -top)  # 10 x 10 grid: 50 inputs, 5 pairs of rows
    assert len(grid) == 100
    rows = grid.view(10, 10)
    assert torch.equal(rows[0], torch.arange(10.0)) and torch.equal(rows[1], -torch.arange(10.0))
    assert torch.equal(rows[8], torch.arange(40.0, 50.0))


def test_class_grid_has_one_row_per_class_and_labelled_points_get_class_colours():
    row, col = square_indices(3)
    assert row.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and col.tolist() == [0, 1, 2] * 3
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.2]])
    image = picture(labelled_points(points, torch.tensor([0, 3, -1])))
    colours = {tuple(p) for p in image.reshape(-1, 3).tolist()}
    assert PALETTE[0] in colours and PALETTE[3] in colours and PALETTE[1] not in colours


# -- clear errors ----------------------------------------------------------------------------
def test_infogan_with_elbo_and_a_one_value_code_are_clear_errors():
    with pytest.raises(GenrunError, match=r"does not train with loss=(elbo|ELBO) .*valid losses.*nsgan"):
        check_model_accepts_loss(compose_config("model=infogan", "loss=elbo"))
    with pytest.raises(GenrunError, match=r"model.categorical=1.*k >= 2"):
        build_pipeline(compose_config(*tiny("infogan", "model.categorical=1")), torch.device("cpu"))


def test_mixture_prior_needs_a_2d_code():
    with pytest.raises(GenrunError, match=r"model.z_dim=8.*set model.z_dim=2"):
        build_pipeline(compose_config(*tiny("aae", "model.prior=mixture", "model.z_dim=8")), torch.device("cpu"))


def test_conditional_families_on_an_unlabelled_image_folder_are_clear_errors(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    for model in ("cgan", "cvae"):
        cfg = compose_config(*tiny(model, "dataset=image_folder", f"dataset.root={tmp_path}",
                                   "dataset.image_size=16", "dataset.channels=1", "trainer.batch_size=2"))
        with pytest.raises(GenrunError, match=rf"model={model} needs labelled data.*num_classes=0"):
            run(cfg, tmp_path / "run")


def test_cgan_on_batches_without_labels_is_a_clear_error():
    pipeline = build_pipeline(compose_config(*tiny("cgan")), torch.device("cpu"))
    data = DataBundle(train=torch.zeros(8, 1, 16, 16))
    with pytest.raises(GenrunError, match="model=cgan needs labelled data"):
        train_step(pipeline, lambda: {"x": data.train})
