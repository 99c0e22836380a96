"""Image datasets read from disk: tiny files in torchvision's own formats, loaded by the real code."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image

from genrun.data.bundle import Batches, DataBundle
from genrun.data.vision import image_folder, torchvision_dataset
from genrun.errors import GenrunError

N_IMAGES = 20


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """uint8 [N, H, W] as an IDX3 file: big-endian magic 2051, then N, H, W, then the pixels."""
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """uint8 [N] as an IDX1 file: big-endian magic 2049, then N, then the labels."""
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def mnist_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N_IMAGES random 28x28 images and labels; image 0 is all white, image 1 all black."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(N_IMAGES, 28, 28), dtype=np.uint8)
    images[0], images[1] = 255, 0
    labels = rng.integers(0, 10, size=N_IMAGES, dtype=np.uint8)
    return images, labels


def write_mnist(root: Path, folder: str, images: np.ndarray, labels: np.ndarray) -> None:
    """The four unzipped raw files torchvision's MNIST-style datasets read, under root/folder/raw."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)


def write_cifar10(root: Path, per_batch: int = 2, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """cifar-10-batches-py with five training batches, a test batch and batches.meta.

    The real files are Python 2 pickles whose str keys load as str under encoding="latin1"
    (which torchvision uses), so the keys here are str: "data", "labels", "label_names".
    Returns the training images (HWC uint8, in file order) and their labels.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    all_data, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f, protocol=2)
        if name != "test_batch":
            all_data.append(data)
            all_labels.extend(labels)
    with open(folder / "batches.meta", "wb") as f:
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        pickle.dump({"label_names": names, "num_vis": 3072, "num_cases_per_batch": per_batch}, f, protocol=2)
    hwc = np.vstack(all_data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return hwc, all_labels


def write_png(path: Path, size: tuple[int, int], mode: str, value: int | tuple[int, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def assert_image_tensor(x, shape: tuple[int, ...]) -> None:
    assert isinstance(x, torch.Tensor)
    assert x.dtype == torch.float32
    assert tuple(x.shape) == shape
    assert x.min() >= -1.0 and x.max() <= 1.0


# --- MNIST and Fashion-MNIST -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_mnist_style_raw_files_load(tmp_path, name):
    images, labels = mnist_arrays()
    write_mnist(tmp_path, name, images, labels)
    bundle = torchvision_dataset(name=name, root=str(tmp_path), download=False, image_size=32, channels=1)

    assert isinstance(bundle, DataBundle)
    assert len(bundle) == N_IMAGES
    assert bundle.train.dtype == torch.uint8  # held as pixels, scaled per batch
    batch = bundle.examples(N_IMAGES)
    for i in (0, 1, 7, N_IMAGES - 1):
        assert_image_tensor(batch["x"][i], (1, 32, 32))
        assert int(batch["y"][i]) == int(labels[i])
    # Pixel values survive the resize and the [0, 255] -> [-1, 1] scaling.
    white, black = batch["x"][0], batch["x"][1]
    assert torch.allclose(white, torch.ones_like(white), atol=1e-5)
    assert torch.allclose(black, -torch.ones_like(black), atol=1e-5)


def test_mnist_keeps_its_size_and_pixels_at_28(tmp_path):
    """Without a resize the tensor is exactly the written image, scaled to [-1, 1]."""
    images, labels = mnist_arrays(seed=3)
    write_mnist(tmp_path, "MNIST", images, labels)
    bundle = torchvision_dataset(name="MNIST", root=str(tmp_path), download=False, image_size=28, channels=1)
    batch = bundle.examples(N_IMAGES)
    x, y = batch["x"][5], batch["y"][5]
    expected = torch.from_numpy(images[5]).float() / 255.0 * 2 - 1
    assert tuple(x.shape) == (1, 28, 28)
    assert torch.allclose(x[0], expected, atol=1e-5)
    assert int(y) == int(labels[5])


def test_mnist_as_three_channels(tmp_path):
    images, labels = mnist_arrays()
    write_mnist(tmp_path, "MNIST", images, labels)
    bundle = torchvision_dataset(name="MNIST", root=str(tmp_path), download=False, image_size=32, channels=3)
    x = bundle.examples(4)["x"][3]
    assert_image_tensor(x, (3, 32, 32))
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


# --- CIFAR-10 --------------------------------------------------------------------------------


def test_cifar10_batches_load(tmp_path, monkeypatch):
    # Tiny files cannot match the published md5 sums.
    monkeypatch.setattr(tvd.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda *a, **k: True)
    hwc, labels = write_cifar10(tmp_path, per_batch=2)
    bundle = torchvision_dataset(name="CIFAR10", root=str(tmp_path), download=False, image_size=32, channels=3)

    assert len(bundle) == 10 and len(bundle.test) == 2
    batch = bundle.examples(10)
    for i in (0, 4, 9):
        x, y = batch["x"][i], int(batch["y"][i])
        assert_image_tensor(x, (3, 32, 32))
        assert y == labels[i]
        expected = torch.from_numpy(hwc[i]).permute(2, 0, 1).float() / 255.0 * 2 - 1
        assert torch.allclose(x, expected, atol=1e-5)


def test_cifar10_as_grey(tmp_path, monkeypatch):
    monkeypatch.setattr(tvd.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda *a, **k: True)
    write_cifar10(tmp_path, per_batch=1)
    bundle = torchvision_dataset(name="CIFAR10", root=str(tmp_path), download=False, image_size=16, channels=1)
    x = bundle.examples(1)["x"][0]
    assert_image_tensor(x, (1, 16, 16))


# --- missing data and bad arguments ----------------------------------------------------------


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "CIFAR10"])
def test_no_files_without_download_is_a_clear_error(tmp_path, name):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(GenrunError) as info:
        torchvision_dataset(name=name, root=str(root), download=False, image_size=32, channels=1)
    message = str(info.value)
    assert "download" in message
    assert str(root) in message
    assert name in message


def test_unknown_torchvision_name(tmp_path):
    with pytest.raises(GenrunError, match="MNIST"):
        torchvision_dataset(name="mnist", root=str(tmp_path), download=False, image_size=32, channels=1)


def test_bad_channel_count(tmp_path):
    images, labels = mnist_arrays()
    write_mnist(tmp_path, "MNIST", images, labels)
    with pytest.raises(GenrunError, match="channels"):
        torchvision_dataset(name="MNIST", root=str(tmp_path), download=False, image_size=32, channels=2)


# --- any folder of images --------------------------------------------------------------------


def make_class_folders(root: Path) -> None:
    """Class a: two RGB images (one non-square); class b: a grey and a larger RGB image."""
    write_png(root / "a" / "red.png", (20, 20), "RGB", (255, 0, 0))
    write_png(root / "a" / "wide.png", (40, 24), "RGB", (0, 255, 0))
    write_png(root / "b" / "grey.png", (12, 12), "L", 255)
    write_png(root / "b" / "nested" / "big.png", (64, 64), "RGB", (0, 0, 255))
    (root / "a" / "notes.txt").write_text("not an image")


def test_image_folder_rgb_labels_by_subfolder(tmp_path):
    make_class_folders(tmp_path)
    bundle = image_folder(str(tmp_path), image_size=16, channels=3)
    ds = bundle.train

    assert len(bundle) == 4
    assert ds.classes == ["a", "b"]
    items = {Path(p).name: ds[i] for i, p in enumerate(ds.paths)}
    for x, _ in items.values():
        assert_image_tensor(x, (3, 16, 16))
    assert {name: y for name, (_, y) in items.items()} == {"red.png": 0, "wide.png": 0, "grey.png": 1, "big.png": 1}
    # Colours survive: pure red stays (1, -1, -1), white grey becomes white in every channel.
    red = items["red.png"][0]
    assert torch.allclose(red, torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, 16, 16), atol=1e-5)
    assert torch.allclose(items["grey.png"][0], torch.ones(3, 16, 16), atol=1e-5)


def test_image_folder_grey(tmp_path):
    make_class_folders(tmp_path)
    bundle = image_folder(str(tmp_path), image_size=16, channels=1)
    labels = []
    for i in range(len(bundle)):
        x, y = bundle.train[i]
        assert_image_tensor(x, (1, 16, 16))
        labels.append(y)
    assert sorted(labels) == [0, 0, 1, 1]


def test_image_folder_without_subfolders_is_unlabelled(tmp_path):
    write_png(tmp_path / "one.png", (10, 10), "RGB", (10, 20, 30))
    write_png(tmp_path / "two.jpg", (30, 18), "L", 128)
    write_png(tmp_path / "sub" / "three.png", (8, 8), "RGB", (0, 0, 0))
    bundle = image_folder(str(tmp_path), image_size=16, channels=3)
    assert len(bundle) == 3
    assert bundle.train.classes == []
    for i in range(3):
        x, y = bundle.train[i]
        assert_image_tensor(x, (3, 16, 16))
        assert y == -1


def test_image_folder_missing_root(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(GenrunError) as info:
        image_folder(str(root), image_size=16, channels=3)
    assert str(root) in str(info.value)


def test_image_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("no pictures here")
    (tmp_path / "sub").mkdir()
    with pytest.raises(GenrunError) as info:
        image_folder(str(tmp_path), image_size=16, channels=3)
    assert str(tmp_path) in str(info.value)
    assert "no images" in str(info.value)


# --- through genrun's batch stream -----------------------------------------------------------


def test_batches_over_mnist_resume_exactly(tmp_path):
    images, labels = mnist_arrays(seed=1)
    write_mnist(tmp_path, "MNIST", images, labels)
    bundle = torchvision_dataset(name="MNIST", root=str(tmp_path), download=False, image_size=32, channels=1)

    def stream() -> Batches:
        return Batches(bundle, batch_size=4, device=torch.device("cpu"), seed=0, num_workers=0)

    full = stream()
    assert full.batches_per_epoch == N_IMAGES // 4
    reference = [full() for _ in range(8)]  # crosses the epoch boundary after 5
    for batch in reference[:2]:
        assert set(batch) == {"x", "y"}
        assert tuple(batch["x"].shape) == (4, 1, 32, 32)
        assert tuple(batch["y"].shape) == (4,)
        assert batch["y"].dtype == torch.int64
    assert not torch.equal(reference[0]["x"], reference[1]["x"])
    # Each epoch visits every example once: the labels of one epoch are a permutation of the written ones.
    epoch0 = torch.cat([b["y"] for b in reference[:5]])
    assert sorted(epoch0.tolist()) == sorted(int(v) for v in labels)

    for stop in (2, 5):  # mid-epoch, and exactly at the end of an epoch
        first = stream()
        for _ in range(stop):
            first()
        resumed = stream()
        resumed.load_state_dict(first.state_dict())
        for expected in reference[stop:stop + 2]:
            got = resumed()
            assert torch.equal(got["x"], expected["x"])
            assert torch.equal(got["y"], expected["y"])


def test_a_folder_streams_through_persistent_workers_and_resumes_exactly(tmp_path):
    for i in range(12):
        write_png(tmp_path / "imgs" / f"{i:02d}.png", (8, 8), "L", 20 * i)
    bundle = image_folder(str(tmp_path / "imgs"), image_size=8, channels=1)

    def stream() -> Batches:
        return Batches(bundle, batch_size=4, device=torch.device("cpu"), seed=0, num_workers=1)

    full = stream()
    reference = [full() for _ in range(7)]  # three batches an epoch: crosses two epoch boundaries
    assert full._data_loader is not None and full._data_loader.persistent_workers
    epoch0 = torch.cat([b["x"] for b in reference[:3]]).flatten(1)[:, 0]
    assert sorted(((epoch0 + 1) * 127.5).round().tolist()) == [20.0 * i for i in range(12)]
    first = stream()
    for _ in range(4):
        first()
    resumed = stream()
    resumed.load_state_dict(first.state_dict())
    for expected in reference[4:]:
        assert torch.equal(resumed()["x"], expected["x"])
