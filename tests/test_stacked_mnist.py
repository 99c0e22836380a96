"""dataset=stacked_mnist: three MNIST digits as three channels, built from files the test writes."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from genrun.data.stacked import stacked_mnist
from genrun.data.vision import torchvision_dataset
from genrun.errors import GenrunError
from genrun.train import run
from tests.conftest import compose_config
from tests.test_vision_data import write_idx_images, write_idx_labels, write_mnist


def digit_images(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose every pixel is 20 * their label: a channel's value names its digit."""
    labels = np.random.default_rng(seed).integers(0, 10, size=n).astype(np.uint8)
    return np.repeat(labels[:, None, None] * 20, 28, 1).repeat(28, 2).astype(np.uint8), labels


@pytest.fixture
def mnist_root(tmp_path):
    images, labels = digit_images()
    write_mnist(tmp_path, "MNIST", images, labels)
    return tmp_path


def test_each_channel_is_a_digit_and_the_label_names_the_three(mnist_root):
    data = stacked_mnist(str(mnist_root), image_size=28, size=200, test_size=50, seed=3)
    assert data.train.shape == (200, 3, 28, 28) and data.train.dtype == torch.uint8
    digits = data.train[:, :, 0, 0].long() // 20  # [N, 3]
    assert torch.equal(digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2], data.labels)
    assert data.test.shape == (50, 3, 28, 28) and len(data.test_labels) == 50
    assert len(torch.unique(data.labels)) > 100  # the channels are drawn independently
    assert data.decode(data.train[:1]).min() >= -1 and data.decode(data.train[:1]).max() <= 1


def test_the_same_seed_gives_the_same_stacks(mnist_root):
    a, b = (stacked_mnist(str(mnist_root), image_size=28, size=50, test_size=5, seed=1) for _ in range(2))
    c = stacked_mnist(str(mnist_root), image_size=28, size=50, test_size=5, seed=2)
    assert torch.equal(a.train, b.train) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)


def test_only_the_t10k_files_gzipped_in_the_root_train_with_train_split_test(tmp_path):
    images, labels = digit_images(40)
    write_idx_images(tmp_path / "plain-images", images)
    write_idx_labels(tmp_path / "plain-labels", labels)
    for kind in ("images-idx3", "labels-idx1"):
        plain = tmp_path / f"plain-{kind.split('-')[0]}"
        (tmp_path / f"t10k-{kind}-ubyte.gz").write_bytes(gzip.compress(plain.read_bytes()))
    digits = torchvision_dataset("MNIST", str(tmp_path), False, 28, 1, "test", 0.25)
    assert len(digits.train) == 30 and len(digits.test) == 10
    assert torch.equal(digits.test_labels, torch.tensor(labels[30:], dtype=torch.long))
    data = stacked_mnist(str(tmp_path), image_size=28, size=20, test_size=4, train_split="test", held_out=0.25)
    assert data.train.shape == (20, 3, 28, 28)
    with pytest.raises(GenrunError, match="no usable data"):
        stacked_mnist(str(tmp_path), image_size=28, size=20)  # train_split=train needs the training files


def test_bad_sizes_and_splits_are_one_line(mnist_root):
    with pytest.raises(GenrunError, match="dataset.train_split='valid'"):
        stacked_mnist(str(mnist_root), train_split="valid")
    with pytest.raises(GenrunError, match="must be positive"):
        stacked_mnist(str(mnist_root), size=0)


@pytest.mark.trains
def test_a_tiny_dcgan_trains_on_it_and_counts_its_modes(mnist_root, tmp_path):
    cfg = compose_config("dataset=stacked_mnist", f"dataset.root={mnist_root}", "dataset.size=64",
                         "dataset.test_size=32", "dataset.image_size=16", "trainer=debug", "trainer.batch_size=8",
                         "eval=debug", "model.generator.width=8", "model.discriminator.width=8")
    run(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 1 <= metrics["modes"] <= 200 and metrics["kl_to_uniform"] >= 0  # 200 samples (eval=debug)
    assert metrics["floor"]["modes"] >= 1
    # the dataset's defaults: its mode metrics, in the per-channel digit classifier's space
    assert metrics["primary"] == "kl_to_uniform" and {"fid", "precision"} <= set(metrics)
    features = metrics["protocol"]["features"]
    assert features["name"] == "channel_classifier" and features["train_examples"] == 3 * 64
