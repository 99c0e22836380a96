"""Image sets read as 8-bit pixels, for the translation tasks built from them (genrun.data.pairs).

A source is the name of another image dataset option (`digits`, `mnist`, `fashion_mnist`,
`cifar10`, `image_folder`, ...: configs/dataset/<name>.yaml, read with the translation dataset's
own `root`, `image_size`, `channels`, ... keys) or the path of a folder of images. Its splits come
back as uint8 tensors at the requested size and channels; a source without a held-out split (an
image folder) has a seeded `held_out` fraction of it held out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.data.tasks import to_pixels, with_channels
from genrun.errors import GenrunError

log = logging.getLogger("genrun")

TRANSLATION_SETS = ("paired", "unpaired", "paired_folders")  # built from sources, not sources themselves
PASSED_KEYS = ("root", "download", "image_size", "channels", "train_split", "held_out")


@dataclass
class Images:
    """One image set as uint8 [N, C, S, S] pixels: a training and a held-out split, their class
    labels (None when unlabelled) and the channels the set has of its own (1: grey, 3: colour)."""

    train: Tensor
    train_labels: Tensor | None
    test: Tensor
    test_labels: Tensor | None
    native_channels: int
    name: str

    @property
    def labelled(self) -> bool:
        return self.train_labels is not None and self.test_labels is not None

    def split(self, name: str) -> tuple[Tensor, Tensor | None]:
        return (self.train, self.train_labels) if name == "train" else (self.test, self.test_labels)


def image_options() -> list[str]:
    """The packaged dataset options that are image sets (a value range and an image size)."""
    from genrun.options import load_option, option_names

    names = []
    for name in option_names("dataset"):
        node = load_option("dataset", name)
        if name not in TRANSLATION_SETS and node.get("range") is not None and "image_size" in node:
            names.append(name)
    return names


def is_folder(source: str) -> bool:
    """A source that names a folder (a path) rather than a dataset option."""
    return "/" in source or Path(source).expanduser().is_dir()


def read_images(source: str, options: Mapping[str, Any], seed: int, key: str = "dataset.source") -> Images:
    """The images of `source` (a dataset option or a folder; `key` is the setting that names it) at
    options' image_size and channels."""
    if is_folder(source):
        from genrun.data.vision import image_folder

        bundle = image_folder(source, int(options["image_size"]), int(options["channels"]))
        return as_images(bundle, options, seed, int(options["channels"]), source)
    node, native = source_node(source, options, key)
    return as_images(build_source(node, source), options, seed, native, source)


def source_node(source: str, options: Mapping[str, Any], key: str = "dataset.source") -> tuple[dict[str, Any], int]:
    """Dataset option `source` resolved with the translation dataset's keys in place of its own, and
    the channels it has of its own."""
    from omegaconf import OmegaConf

    from genrun.options import load_option

    valid = image_options()
    if source not in valid:
        raise GenrunError(f"{key}={source!r} is not an image set; valid: {', '.join(valid)} or a folder path")
    node = load_option("dataset", source)
    own_channels = node.get("channels")
    node = OmegaConf.merge(node, {k: options[k] for k in PASSED_KEYS if k in node and k in options})
    resolved = OmegaConf.to_container(OmegaConf.create({"dataset": node}), resolve=True)["dataset"]
    return resolved, int(own_channels if own_channels is not None else options["channels"])


def build_source(node: Mapping[str, Any], name: str) -> DataBundle:
    """Instantiate a dataset option's builder (its `source` node)."""
    from hydra.utils import instantiate

    bundle = instantiate(node["source"], _convert_="all")
    if not isinstance(bundle, DataBundle):
        raise GenrunError(f"dataset.source={name}: its builder returned {type(bundle).__name__}, not images")
    return bundle


def as_images(bundle: DataBundle, options: Mapping[str, Any], seed: int, native: int, name: str) -> Images:
    """A source's bundle as uint8 splits of the requested channels; a seeded held-out split when it has none."""
    channels = int(options["channels"])
    x, y = pixels_of(bundle.train, bundle.labels, bundle)
    if bundle.test is not None:
        x_test, y_test = pixels_of(bundle.test, bundle.test_labels, bundle)
    else:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        cut = len(x) - max(1, int(round(len(x) * float(options.get("held_out", 0.1)))))
        if cut < 1:
            raise GenrunError(f"dataset.source={name} holds {len(x)} image(s): too few to hold some out")
        keep, held = order[:cut], order[cut:]
        x, x_test = x[keep], x[held]
        y, y_test = (y[keep], y[held]) if y is not None else (None, None)
        log.info("dataset.source=%s has no held-out split: %d of its %d images are held out (seed %d)",
                 name, len(held), len(order), seed)
    x, x_test = (with_channels(t.float() / 255, channels) for t in (x, x_test))
    return Images(to_pixels(x), y, to_pixels(x_test), y_test, native, name)


def pixels_of(split: Any, labels: Tensor | None, bundle: DataBundle) -> tuple[Tensor, Tensor | None]:
    """(uint8 pixels, labels or None) of a split: a tensor (stored pixels or values in [-1, 1]) or a
    dataset of (image in [-1, 1], label) pairs, read once; labels < 0 (unlabelled) give None."""
    if isinstance(split, Tensor):
        x = split if split.dtype == torch.uint8 else to_pixels((bundle.decode(split).float() + 1) / 2)
        return x, labels if labels is not None and bool((labels >= 0).all()) else None
    items = [split[i] for i in range(len(split))]
    x = to_pixels((torch.stack([image for image, _ in items]) + 1) / 2)
    y = torch.tensor([int(label) for _, label in items], dtype=torch.long)
    return x, y if bool((y >= 0).all()) else None
