"""Image datasets read from disk: torchvision's (MNIST, Fashion-MNIST, CIFAR-10) and any folder.

torchvision's sets fit in memory: they are read once, resized and converted once, and kept
as uint8 tensors that the batch stream holds on the device and scales per batch (no
DataLoader, no per-image PIL work on the hot path). A folder of images streams through a
DataLoader.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.errors import GenrunError
from genrun.ranges import OpenUnit, PositiveInt

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TORCHVISION_SETS = ("MNIST", "FashionMNIST", "CIFAR10")


class ConvertMode:
    """PIL mode conversion as a picklable transform (DataLoader workers may be spawned)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, image):
        if image.mode == "I" or image.mode.startswith("I;16"):  # 16-bit: rescale, convert() clips
            image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        return image.convert(self.mode)


def image_transform(image_size: PositiveInt, channels: PositiveInt):
    """PIL image -> [channels, image_size, image_size] tensor in [-1, 1]."""
    from torchvision import transforms as T

    if channels not in (1, 3):
        raise GenrunError(f"dataset.channels={channels}: images have 1 (grey) or 3 (RGB) channels")
    return T.Compose([
        ConvertMode("L" if channels == 1 else "RGB"),
        T.Resize(image_size),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize([0.5] * channels, [0.5] * channels),
    ])


def pixels_in_memory(dataset, image_size: int, channels: int) -> tuple[Tensor, Tensor]:
    """A torchvision dataset's images as uint8 [N, channels, image_size, image_size] (converted
    like image_transform: channels, resize of the shorter side, centre crop) and its labels."""
    from torchvision.transforms.v2 import functional as TF

    if channels not in (1, 3):
        raise GenrunError(f"dataset.channels={channels}: images have 1 (grey) or 3 (RGB) channels")
    x = torch.as_tensor(dataset.data)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)  # [N, H, W] or [N, H, W, C] -> [N, C, H, W]
    if x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] == 3 and channels == 1:
        x = TF.rgb_to_grayscale(x)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = TF.center_crop(TF.resize(x, [image_size], antialias=True), [image_size, image_size])
    return x.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.long)


def torchvision_dataset(name: str, root: str, download: bool, image_size: PositiveInt, channels: PositiveInt,
                        train_split: str = "train", held_out: OpenUnit = 0.1) -> DataBundle:
    """A torchvision dataset's training and test splits, in memory; `download=false` with no
    files is a clear error. `train_split=test` reads only the official test split (e.g. where
    only MNIST's t10k files exist) and holds out its last `held_out` fraction for the metrics."""
    import torchvision.datasets as tvd

    if name not in TORCHVISION_SETS:
        raise GenrunError(f"dataset.source.name={name!r}: valid: {', '.join(TORCHVISION_SETS)}")
    if train_split not in ("train", "test"):
        raise GenrunError(f"dataset.train_split={train_split!r}: valid: train (train on the training split, "
                          "hold out the test split), test (train on part of the test split only)")
    cls = getattr(tvd, name)
    try:
        if train_split == "test" and name in IDX_SETS:
            splits = [idx_test_split(name, root) or cls(root=root, train=False, download=download)]
        else:
            splits = [cls(root=root, train=train, download=download)
                      for train in ((True, False) if train_split == "train" else (False,))]
    except RuntimeError as exc:
        hint = "set dataset.download=true" if not download else "check the network"
        raise GenrunError(
            f"dataset {name}: no usable data under dataset.root={root!r} ({exc}); {hint} "
            f"or point dataset.root at a folder holding it"
        ) from exc
    arrays = [pixels_in_memory(split, image_size, channels) for split in splits]
    if train_split == "train":
        (x, y), (x_test, y_test) = arrays
    else:
        (images, labels), cut = arrays[0], int(round(len(arrays[0][0]) * (1 - held_out)))
        x, y, x_test, y_test = images[:cut], labels[:cut], images[cut:], labels[cut:]
    return DataBundle(train=x, labels=y, test=x_test, test_labels=y_test, pixels=(-1.0, 1.0))


IDX_SETS = ("MNIST", "FashionMNIST")  # stored as IDX files (t10k-images-idx3-ubyte, ...)


def read_idx(path: Path) -> Tensor:
    """An IDX file (optionally gzipped) as a uint8 tensor: magic (2 zero bytes, type, ndim), sizes, data."""
    import gzip

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).view(*shape)


def idx_test_split(name: str, root: str) -> SimpleNamespace | None:
    """The official test split of an IDX set read from its t10k files alone (torchvision's class
    insists on all four files): under ROOT/<name>/raw/ or ROOT itself, plain or .gz; None if absent."""
    for folder in (Path(root) / name / "raw", Path(root)):
        for suffix in ("", ".gz"):
            images, labels = folder / f"t10k-images-idx3-ubyte{suffix}", folder / f"t10k-labels-idx1-ubyte{suffix}"
            if images.is_file() and labels.is_file():
                return SimpleNamespace(data=read_idx(images), targets=read_idx(labels).long())
    return None


class ImageFiles:
    """Every image below a folder; labels are first-level subfolder names when all have one."""

    def __init__(self, root: str, image_size: PositiveInt, channels: PositiveInt) -> None:
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise GenrunError(f"dataset.root={root!r} is not a folder")
        self.paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise GenrunError(f"dataset.root={root!r} holds no images (looked for {' '.join(IMAGE_SUFFIXES)})")
        parts = [p.relative_to(folder).parts for p in self.paths]
        classes = sorted({q[0] for q in parts if len(q) > 1})
        labelled = all(len(q) > 1 for q in parts)
        self.classes = classes if labelled else []
        index = {c: i for i, c in enumerate(self.classes)}
        self.labels = [index[q[0]] if labelled else -1 for q in parts]
        self.transform = image_transform(image_size, channels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.transform(im), self.labels[i]


def image_folder(root: str, image_size: PositiveInt = 64, channels: PositiveInt = 3) -> DataBundle:
    """Any folder of images, searched recursively."""
    return DataBundle(train=ImageFiles(root, image_size, channels))
