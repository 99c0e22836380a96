"""genrun's own classifier feature space, its cache, and the metrics read from its predictions."""

from __future__ import annotations

import json
import math

import pytest
import torch

from genrun.data.bundle import DataBundle
from genrun.data.digits import load_digits
from genrun.errors import GenrunError
from genrun.metrics import classifier as clf
from genrun.metrics.base import EvalContext
from genrun.metrics.classes import ClassifierIS, ClassKL, inception_score
from genrun.metrics.classifier import ClassifierFeatures, ClassifierSettings
from genrun.metrics.stacked import (
    ChannelClassifierFeatures,
    StackedModes,
    channel_digits,
    mode_counts_metrics,
    mode_logits,
)
from genrun.train import run
from tests.conftest import TINY, compose_config

CPU = torch.device("cpu")
FAST = ClassifierSettings(width=8, feature_dim=16, epochs=5, max_steps=200, lr=5e-3)


def logits_ctx(fake_logits: torch.Tensor, real_logits: torch.Tensor) -> EvalContext:
    ctx = EvalContext(torch.zeros(len(real_logits), 1), lambda: torch.zeros(len(fake_logits), 1), None, None, None, 0)
    ctx.fake_logits, ctx.real_logits = fake_logits, real_logits  # what a classifier would predict
    return ctx


def test_second_prepare_loads_the_cached_classifier_and_does_not_train(monkeypatch, tmp_path):
    monkeypatch.setenv("GENRUN_CACHE", str(tmp_path))
    data = load_digits(8)
    first = ClassifierFeatures(FAST)
    first.prepare(data, (-1.0, 1.0), CPU)
    assert first.info["accuracy"] > 0.5 and len(list((tmp_path / "classifiers").glob("*.pt"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the cache holds this classifier")

    monkeypatch.setattr(clf, "train_classifier", no_training)
    second = ClassifierFeatures(FAST)
    second.prepare(data, (-1.0, 1.0), CPU)
    x = data.examples(16)["x"]
    assert torch.equal(first.features(x), second.features(x))
    assert second.protocol()["weights_sha256"] == first.protocol()["weights_sha256"]


def test_cache_key_changes_with_the_data_its_range_and_the_settings():
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 2
    key = clf.data_key(x, y, (-1, 1), FAST)
    x2 = x.clone()
    x2[0, 0, 0, 0] += 1e-3
    assert clf.data_key(x2, y, (-1, 1), FAST) != key
    assert clf.data_key(x, 1 - y, (-1, 1), FAST) != key
    assert clf.data_key(x, y, (0, 1), FAST) != key
    assert clf.data_key(x, y, (-1, 1), ClassifierSettings()) != key
    assert clf.data_key(x.clone(), y.clone(), (-1, 1), FAST) == key


def test_a_torn_cache_file_is_retrained_not_fatal(monkeypatch, tmp_path):
    monkeypatch.setenv("GENRUN_CACHE", str(tmp_path))
    data = load_digits(8)
    ClassifierFeatures(FAST).prepare(data, (-1.0, 1.0), CPU)
    (cached,) = (tmp_path / "classifiers").glob("*.pt")
    cached.write_bytes(b"torn")
    again = ClassifierFeatures(FAST)
    again.prepare(data, (-1.0, 1.0), CPU)
    assert again.info["accuracy"] > 0.5 and cached.stat().st_size > 100


def test_class_kl_and_classifier_is_on_known_predictions():
    k = 4
    confident_uniform = 50.0 * torch.eye(k).repeat(25, 1)  # 100 samples, each class 25 times, sure of it
    one_class = 50.0 * torch.eye(k)[[0] * 100]
    assert ClassKL()(logits_ctx(confident_uniform, confident_uniform))["class_kl"] == pytest.approx(0.0, abs=1e-9)
    assert ClassKL()(logits_ctx(one_class, confident_uniform))["class_kl"] == pytest.approx(math.log(k))
    assert ClassifierIS()(logits_ctx(confident_uniform, confident_uniform))["cis"] == pytest.approx(k, rel=1e-6)
    assert ClassifierIS()(logits_ctx(one_class, confident_uniform))["cis"] == pytest.approx(1.0, abs=1e-6)
    assert inception_score(torch.zeros(10, k)) == pytest.approx(1.0)  # no confident prediction


def easy_digits(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n 8x8 one-channel images whose class d is a bright 2x2 block at a fixed place: learnable to 100%."""
    y = torch.randint(10, (n,), generator=g)
    x = -torch.ones(n, 1, 8, 8) + 0.05 * torch.randn(n, 1, 8, 8, generator=g)
    for i, d in enumerate(y.tolist()):
        r, c = divmod(d, 4)
        x[i, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = 1.0
    return x, y


def stacked(digits: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, 3] digit triples -> stacked easy images and their labels d0*100 + d1*10 + d2."""
    channels = []
    for c in range(3):
        x, _ = easy_digits(len(digits), g)
        for i, d in enumerate(digits[:, c].tolist()):  # redraw each channel as the wanted digit
            x[i] = easy_one(d, g)
        channels.append(x)
    return torch.cat(channels, 1), digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def easy_one(d: int, g: torch.Generator) -> torch.Tensor:
    x = -torch.ones(1, 8, 8) + 0.05 * torch.randn(1, 8, 8, generator=g)
    r, c = divmod(d, 4)
    x[0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = 1.0
    return x


def test_stacked_modes_count_fabricated_samples(monkeypatch, tmp_path):
    """The per-channel digit classifier names each sample's mode; its 1,000-way logits are the sums
    of the channels' digit log-probabilities, so the predicted mode is the three predicted digits."""
    monkeypatch.setenv("GENRUN_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    train_x, train_y = stacked(torch.randint(10, (300, 3), generator=g), g)
    test_x, test_y = stacked(torch.randint(10, (100, 3), generator=g), g)
    data = DataBundle(train=train_x, labels=train_y, test=test_x, test_labels=test_y)
    space = ChannelClassifierFeatures()
    space.prepare(data, (-1.0, 1.0), torch.device("cpu"))
    assert space.info["accuracy"] == 1.0 and space.features(test_x[:4]).shape == (4, 3 * 128)
    assert torch.equal(space.logits(test_x).argmax(1), test_y)
    assert torch.allclose(space.logits_of_features(space.features(test_x)), space.logits(test_x), atol=1e-4)
    every_mode = torch.cartesian_prod(torch.arange(10), torch.arange(10), torch.arange(10))
    ten_modes = torch.tensor([[d, d, d] for d in range(10)]).repeat_interleave(100, 0)
    metric = StackedModes()
    for fake_digits, modes, kl in ((every_mode, 1000, 0.0), (ten_modes, 10, math.log(100))):
        fake, _ = stacked(fake_digits, g)
        ctx = EvalContext(train_x, lambda f=fake: f, space, None, data, 0, value_range=(-1.0, 1.0))
        assert metric.missing(ctx) is None
        result = metric(ctx)
        assert result["modes"] == modes and result["kl_to_uniform"] == pytest.approx(kl, abs=1e-9)


def test_mode_logits_add_the_channels_log_probabilities():
    lp = torch.log_softmax(torch.randn(2, 3, 10, generator=torch.Generator().manual_seed(1)), 2)
    logits = mode_logits(lp)
    assert logits.shape == (2, 1000)
    assert logits[1, 907] == pytest.approx(float(lp[1, 0, 9] + lp[1, 1, 0] + lp[1, 2, 7]))
    assert torch.allclose(logits.exp().sum(1), torch.ones(2), atol=1e-5)  # a distribution over the modes


def test_stacked_modes_skip_other_data_and_channel_labels():
    x, y = torch.zeros(2, 3, 4, 4), torch.tensor([907, 45])
    _, labels = channel_digits(x, y)
    assert labels.tolist() == [9, 0, 0, 4, 7, 5]
    assert mode_counts_metrics(torch.tensor([0, 0, 999]))["modes"] == 2
    digits = load_digits(8)
    with pytest.raises(GenrunError, match="features=channel_classifier needs stacked MNIST"):
        ChannelClassifierFeatures().prepare(digits, (-1.0, 1.0), torch.device("cpu"))
    space = ClassifierFeatures()
    space.prepare(digits, (-1.0, 1.0), torch.device("cpu"))
    x = digits.train[:20]
    assert torch.allclose(space.logits_of_features(space.features(x)), space.logits(x), atol=1e-5)
    ctx = EvalContext(digits.train, lambda: digits.train, space, None, digits, 0)
    assert "per-channel digit classifier" in StackedModes().missing(ctx)


@pytest.mark.trains
def test_the_default_job_ends_with_offline_sample_quality_numbers(tmp_path):
    cfg = compose_config(*TINY)  # the default job (dcgan on digits), tiny
    metrics = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    keys = {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "class_kl", "cis"}
    assert keys <= set(saved) and all(math.isfinite(saved[k]) for k in keys)
    assert keys <= set(saved["floor"]) and saved["floor"]["fid"] < saved["fid"]
    features = saved["protocol"]["features"]
    assert features["name"] == "genrun-classifier" and features["accuracy"] > 0.9
    assert len(features["weights_sha256"]) == 64
    assert saved["protocol"]["n_fake"] == 200 and saved["protocol"]["real_split"] == "train"
    assert metrics["primary"] == "fid"


def test_a_classifier_that_costs_more_than_the_run_says_so_in_one_line(caplog):
    digits = load_digits(8)
    x, y = digits.train[:256].float(), digits.labels[:256]
    settings = ClassifierSettings(max_steps=25, check_every=10)
    with caplog.at_level("INFO", logger="genrun"):
        clf.train_classifier(x, y, 10, settings, torch.device("cpu"), (x, y), budget_s=1e-6)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "more than the 0 s of training it measures" in warnings[0]
    assert "features=none turns it off" in warnings[0]
    assert [r.getMessage() for r in caplog.records if "held-out accuracy" in r.getMessage()][:2] == [
        m for m in (r.getMessage() for r in caplog.records) if m.startswith("classifier: step ")][:2]
