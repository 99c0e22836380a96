"""Issue 18's families and metrics: the semi-supervised GAN, discriminator probes, DANN (gradient
reversal and Feutry's marginal variant), adversarial independence and the discrete BGAN. Closed
forms of their objectives, their data (labelled subsets, textured target domains, source mixtures:
deterministic and resumable), a few training steps of each, bit-exact resume, and bad input."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genrun.build import build_data, build_pipeline
from genrun.data.bundle import Batches, DataBundle, SideStream
from genrun.data.domains import mnist_textured, procedural_textures
from genrun.data.independent import independent_sources
from genrun.data.labelled import choose_per_class, labelled_subset
from genrun.engine.checkpoint import load_checkpoint
from genrun.engine.updates import Updater
from genrun.errors import GenrunError
from genrun.losses.adversarial import BoundarySeeking, importance_weights
from genrun.losses.domain import DomainAdversarial, grl_lambda
from genrun.losses.invariance import Marginal, Reversal
from genrun.losses.semi_supervised import (
    class_probabilities,
    feature_matching,
    labelled_loss,
    real_probability,
    unlabelled_loss,
)
from genrun.metrics.representation import matched_correlation
from genrun.nets.discrete import categorical_indices, categorical_log_prob
from genrun.nets.domain import reverse_gradient
from genrun.nets.pooling import pooled_activations, reinitialised
from genrun.pipelines.independence import product_of_marginals
from genrun.train import run
from tests.conftest import compose_config
from tests.test_training import assert_bitwise_equal


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory) -> Path:
    """MNIST-format t10k files made of scikit-learn's digits at 28 px (1,797 images with labels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
    x = (F.interpolate(x, size=(28, 28), mode="bilinear") * 255).round().clamp(0, 255).to(torch.uint8)[:, 0]
    root = tmp_path_factory.mktemp("mnist")
    n = len(x)
    (root / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + x.numpy().tobytes())
    (root / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + digits.target.astype(np.uint8).tobytes())
    return root


# -- closed forms ------------------------------------------------------------------------------
def test_gradient_reversal_is_the_identity_forward_and_flips_and_scales_the_gradient():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.3 * w)


def test_the_reversal_schedule_rises_from_zero_towards_one():
    values = grl_lambda(torch.tensor([0.0, 0.1, 0.5, 1.0]))
    assert values[0] == 0 and torch.all(values[1:] > values[:-1])
    assert math.isclose(float(values[-1]), 2 / (1 + math.exp(-10)) - 1, rel_tol=1e-6)
    assert math.isclose(float(DomainAdversarial(gamma=10, weight=0.5).domain_weight(0.5)),
                        0.5 * (2 / (1 + math.exp(-5)) - 1), rel_tol=1e-6)


def test_the_k_logit_critic_gives_d_as_z_over_z_plus_one_and_the_classes_as_a_softmax():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [-5.0, -5.0]])
    z = logits.exp().sum(1)
    assert torch.allclose(real_probability(logits), z / (z + 1))
    assert torch.allclose(real_probability(torch.zeros(1, 10)), torch.tensor([10 / 11]))
    assert torch.allclose(class_probabilities(logits + 7.0), class_probabilities(logits))  # shift: classes unchanged
    assert not torch.allclose(real_probability(logits + 1.0), real_probability(logits))  # ... D(x) is not


def test_the_semi_supervised_terms_are_the_authors_losses():
    real, fake = torch.randn(6, 4), torch.randn(6, 4)
    d_real, d_fake = real_probability(real), real_probability(fake)
    expected = 0.5 * (-d_real.log()).mean() + 0.5 * (-(1 - d_fake).log()).mean()
    assert torch.allclose(unlabelled_loss(real, fake), expected, atol=1e-6)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.allclose(labelled_loss(real, labels), -real.log_softmax(1)[torch.arange(6), labels].mean())
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert feature_matching(f, f + torch.tensor([0.5, -1.5])) == 1.0  # mean |difference of the means|


def test_importance_weights_sum_to_one_per_z_and_weigh_by_the_density_ratio():
    logits = torch.randn(5, 3)  # M = 5 draws of N = 3 z's
    w = importance_weights(logits)
    assert torch.allclose(w.sum(0), torch.ones(3))
    d = torch.sigmoid(logits)
    ratio = d / (1 - d)  # D / (1 - D) = e^V
    assert torch.allclose(w, ratio / ratio.sum(0, keepdim=True), atol=1e-6)


def test_the_discrete_bgan_gradient_is_the_weighted_score():
    logits = torch.randn(4, 2)
    log_probs = torch.randn(4, 2, requires_grad=True)
    BoundarySeeking().discrete_g_loss(logits, log_probs).backward()
    assert torch.allclose(log_probs.grad, -importance_weights(logits) / 2)  # mean over the N = 2 z's


def test_categorical_draws_follow_the_inverse_cdf_and_their_log_probabilities():
    logits = torch.log(torch.tensor([0.2, 0.3, 0.5])).view(1, 3, 1, 1, 1)
    u = torch.tensor([0.1, 0.25, 0.6, 0.99]).view(4, 1, 1, 1, 1)
    idx = categorical_indices(logits, u)
    assert idx.flatten().tolist() == [0, 1, 2, 2]
    assert torch.allclose(categorical_log_prob(logits, idx).flatten(), torch.log(torch.tensor([0.2, 0.3, 0.5, 0.5])))


def test_the_marginal_invariance_is_zero_at_the_marginal_and_reversal_rewards_confusion():
    domains = torch.tensor([0.0, 0.0, 1.0, 1.0])
    at_marginal = torch.zeros(4)  # q(d = 1 | f) = 1/2 everywhere
    assert Marginal().encoder_term(at_marginal, domains).abs() < 1e-6
    confidently_wrong = torch.tensor([5.0, 5.0, -5.0, -5.0])
    assert Marginal().encoder_term(confidently_wrong, domains) > 4  # no reward for a wrong classifier
    assert Reversal().encoder_term(confidently_wrong, domains) < Reversal().encoder_term(at_marginal, domains)


def test_matched_correlation_is_one_up_to_order_sign_and_scale():
    g = torch.Generator().manual_seed(0)
    s = torch.rand(2000, 3, generator=g)
    assert math.isclose(matched_correlation(torch.stack([-2 * s[:, 2], s[:, 0] + 1, 3 * s[:, 1]], 1), s), 1.0,
                        abs_tol=1e-9)
    assert matched_correlation(torch.rand(2000, 3, generator=g), s) < 0.1


def test_product_of_marginals_shuffles_each_column_on_its_own():
    torch.manual_seed(0)
    y = torch.randn(500, 2)
    y[:, 1] = y[:, 0]  # fully dependent
    shuffled = product_of_marginals(y)
    assert all(torch.equal(shuffled[:, i].sort().values, y[:, i].sort().values) for i in range(2))
    assert abs(float(torch.corrcoef(shuffled.T)[0, 1])) < 0.2


def test_pooled_activations_read_every_layer_and_a_random_critic_differs():
    cfg = compose_config("model=dcgan", "model.discriminator.width=8")
    critic = build_pipeline(cfg, torch.device("cpu")).discriminator.eval()
    features = pooled_activations(critic, torch.randn(3, 1, 16, 16))
    assert features.shape == (3, 8 * 16 + 16 * 16)  # 8 x 8x8 and 16 x 4x4 maps, each pooled to 4 x 4
    fresh = reinitialised(critic, 0)
    assert not torch.equal(next(fresh.parameters()), next(critic.parameters()))
    assert torch.equal(next(reinitialised(critic, 0).parameters()), next(fresh.parameters()))


# -- data --------------------------------------------------------------------------------------
def test_a_labelled_subset_is_per_class_seeded_and_hides_the_batches_labels():
    data = build_data(compose_config("dataset=digits"))
    sub = labelled_subset(data, 3, seed=0)
    stream = sub.streams["labelled"]
    assert torch.equal(torch.bincount(stream.y), torch.full((10,), 3))
    assert torch.equal(stream.y, data.labels[stream.indices]) and torch.equal(stream.x, data.train[stream.indices])
    assert torch.equal(labelled_subset(data, 3, seed=0).streams["labelled"].indices, stream.indices)
    assert not torch.equal(labelled_subset(data, 3, seed=1).streams["labelled"].indices, stream.indices)
    batch = Batches(sub, 16, torch.device("cpu"), 0)()
    assert "y" not in batch and batch["x_labelled"].shape == (16, 1, 16, 16) and batch["y_labelled"].shape == (16,)
    assert set(torch.nonzero(data.labels == 4).flatten().tolist()) >= set(stream.indices[stream.y == 4].tolist())


def test_more_labels_per_class_than_exist_is_one_line():
    labels = torch.tensor([0] * 5 + [1] * 3)
    with pytest.raises(GenrunError, match=r"dataset.labels_per_class=4 but class 1 has only 3 training examples; "
                                          r"valid: 1 to 3"):
        choose_per_class(labels, 4, 0)


def test_side_streams_resume_and_split_between_processes():
    x = torch.arange(40, dtype=torch.float32).view(40, 1)
    data = DataBundle(train=x, streams={"extra": SideStream(torch.arange(7, dtype=torch.float32).view(7, 1) + 100)})

    def draws(stream: Batches, k: int) -> list[torch.Tensor]:
        return [stream()["x_extra"] for _ in range(k)]

    straight = draws(Batches(data, 4, torch.device("cpu"), 3), 6)
    first = Batches(data, 4, torch.device("cpu"), 3)
    draws(first, 3)
    again = Batches(data, 4, torch.device("cpu"), 3)
    again.load_state_dict(first.state_dict())
    assert first.state_dict()["streams"] == {"extra": 12}
    assert all(torch.equal(a, b) for a, b in zip(straight[3:], draws(again, 3), strict=True))
    every = torch.cat(straight).flatten()[:21].tolist()  # three epochs of the 7 examples, each one once per epoch
    assert all(sorted(every[i:i + 7]) == list(range(100, 107)) for i in (0, 7, 14))
    ranks = [Batches(data, 4, torch.device("cpu"), 3, rank=r, world=2)()["x_extra"] for r in (0, 1)]
    assert torch.equal(torch.cat(ranks), straight[0])


def test_the_textured_target_is_deterministic_and_keeps_the_domains_apart(mnist_root):
    g = [torch.Generator().manual_seed(0) for _ in range(2)]
    assert torch.equal(procedural_textures(4, 16, g[0]), procedural_textures(4, 16, g[1]))
    a, b = (mnist_textured(str(mnist_root), image_size=16, train_split="test") for _ in range(2))
    assert torch.equal(a.streams["target"].x, b.streams["target"].x) and torch.equal(a.test, b.test)
    assert a.train.shape[1:] == a.streams["target"].x.shape[1:] == (3, 16, 16)
    assert a.train.dtype == torch.uint8 and a.target_domain
    grey = a.train.float()
    assert torch.equal(grey[:, 0], grey[:, 1])  # the source is grey; the target is coloured
    target = a.streams["target"].x.float()
    assert (target[:, 0] - target[:, 1]).abs().mean() > 5
    assert len(a.train) + len(a.streams["target"].x) == 1617  # the training digits, split in halves


def test_the_source_mixtures_are_deterministic_standardised_and_labelled_with_their_sources():
    data = independent_sources(sources=4, mixing="post_nonlinear", size=3000, test_size=500, seed=1)
    assert torch.equal(data.train, independent_sources(4, "post_nonlinear", 3000, 500, 1).train)
    assert data.train.shape == data.labels.shape == (3000, 4) and data.train.abs().max() < 1  # tanh
    s = torch.cat([data.labels, data.test_labels])
    assert torch.allclose(s.mean(0), torch.zeros(4), atol=1e-5) and torch.allclose(s.std(0), torch.ones(4), atol=1e-4)


# -- training, evaluation, resume ----------------------------------------------------------------
def tiny(model: str, *extra: str) -> list[str]:
    nets = {
        "ssgan": ["model.discriminator.widths=[32,16]", "model.generator.width=16", "dataset.labels_per_class=3"],
        "dann": ["dataset=mnist_textured", "dataset.train_split=test", "dataset.image_size=16", "model.features.width=8",
                 "model.feature_dim=16", "model.hidden=16"],
        "independence": ["dataset.sources=3", "model.encoder.width=16", "model.decoder.width=16",
                         "model.discriminator.width=16"],
        "discrete_gan": ["model.generator.width=8", "model.discriminator.width=8", "model.samples_per_z=3"],
    }[model]
    return [f"model={model}", "trainer=debug", "eval=debug", "trainer.batch_size=16", "trainer.log_every=2",
            "trainer.sample_every=100", "trainer.ckpt_every=100", *nets, *extra]


CASES = [  # model, overrides, metrics it must report
    ("ssgan", ["metrics=[class_error,d_probe]", "metrics.d_probe.labels_per_class=5"],
     {"class_error", "d_probe_accuracy", "d_probe_random_critic"}),
    ("dann", [], {"target_accuracy", "source_accuracy"}),
    ("dann", ["model.invariance=marginal"], {"target_accuracy"}),
    ("independence", [], {"source_correlation"}),
    ("discrete_gan", ["metrics=[fid]", "features=raw"], {"fid"}),
    ("discrete_gan", ["loss=nsgan", "metrics=[fid]", "features=raw", "dataset=digits", "dataset.binarize=dynamic"],
     {"fid"}),
]


@pytest.mark.trains
@pytest.mark.parametrize("model,extra,metrics", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_family_trains_and_is_measured(tmp_path, mnist_root, model, extra, metrics):
    cfg = compose_config(*tiny(model, f"dataset.root={mnist_root}" if model == "dann" else "trainer.seed=0", *extra,
                               "trainer.max_steps=4"))
    result = run(cfg, tmp_path)
    assert result["step"] == 4 and metrics <= set(result), sorted(result)
    assert all(math.isfinite(v) for k, v in result.items() if k.startswith(("loss/", "ssgan/", "dann/")))
    for key in metrics - {"fid"}:
        assert 0.0 <= result[key] <= 1.0 and key in result["directions"]
    if model == "ssgan":
        assert result["protocol"]["metrics"]["class_error"]["labelled"]["examples"] == 30
        assert result["floor"]["d_probe_accuracy"] > 0.5  # raw pixels, 50 labels
    if model == "dann":
        assert result["protocol"]["floor_of"]["target_accuracy"] == "logistic regression on source pixels"


@pytest.mark.trains
def test_bf16_trains_every_new_family(mnist_root):
    for model in ("ssgan", "dann", "independence", "discrete_gan"):
        cfg = compose_config(*tiny(model, *([f"dataset.root={mnist_root}"] if model == "dann" else [])))
        torch.manual_seed(0)
        pipeline, data = build_pipeline(cfg, torch.device("cpu")), build_data(cfg)
        batches = Batches(data, 16, torch.device("cpu"), 0)
        scalars = Updater("cpu", "bf16").step(pipeline, batches, 1)
        assert scalars and all(torch.isfinite(v).all() for v in scalars.values()), (model, scalars)


# DANN's schedule keeps the length its run started with: both runs state the same one
RESUME = [("ssgan", []), ("dann", ["model.schedule_steps=6"]), ("dann", ["model.invariance=marginal", "model.schedule_steps=6"]),
          ("independence", []), ("discrete_gan", [])]


@pytest.mark.trains
@pytest.mark.parametrize("model,extra", RESUME, ids=[f"{m}-{i}" for i, (m, _) in enumerate(RESUME)])
def test_each_family_resumes_bit_exactly(tmp_path, mnist_root, model, extra):
    from genrun.task import resume_config

    common = tiny(model, *([f"dataset.root={mnist_root}"] if model == "dann" else []), "metrics=[]", *extra)
    straight, half = tmp_path / "straight", tmp_path / "half"
    run(compose_config(*common, "trainer.max_steps=6"), straight)
    run(compose_config(*common, "trainer.max_steps=3"), half)
    checkpoint = load_checkpoint(half / "checkpoints" / "last.pt")
    run(resume_config(checkpoint["config_raw"], ["trainer.max_steps=6", "metrics=[]"], str(half)), half, checkpoint)
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (straight, half))
    assert a["step"] == b["step"] == 6 and a["data"] == b["data"]
    keys = ("pipeline", "rng", "sample_noise")
    assert assert_bitwise_equal({k: a[k] for k in keys}, {k: b[k] for k in keys}) > 4
    if model == "dann":
        assert int(b["pipeline"]["nets"]["schedule"]["total"]) == int(b["pipeline"]["nets"]["schedule"]["steps"]) == 6


# -- bad input ----------------------------------------------------------------------------------
def test_dann_without_a_target_domain_is_one_line():
    with pytest.raises(GenrunError, match=r"model=dann needs a dataset with a target domain \(dataset=mnist_textured"):
        build_pipeline(compose_config("model=dann", "dataset=digits"), torch.device("cpu"))


@pytest.mark.trains
def test_a_semi_supervised_run_with_more_labels_than_exist_fails_before_training(tmp_path):
    cfg = compose_config(*tiny("ssgan"), "dataset.labels_per_class=1000")
    with pytest.raises(GenrunError, match=r"dataset.labels_per_class=1000 but class \d has only \d+ training examples"):
        run(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_a_discrete_gan_on_continuous_pixels_is_one_line():
    with pytest.raises(GenrunError, match=r"model=discrete_gan needs discrete images: dataset.binarize"):
        build_pipeline(compose_config(*tiny("discrete_gan"), "dataset=digits"), torch.device("cpu"))
