"""Source and target domains for adversarial domain adaptation, built offline and deterministically.

- `mnist_textured`: MNIST -> MNIST blended over procedural colour textures, an MNIST-M-like target
  (Ganin & Lempitsky 2015 blend MNIST over BSDS500 photo patches: |patch - digit| per channel) made
  without BSDS500: each texture is fractal value noise (octaves of upsampled random fields) with
  random colours, drawn from a generator seeded with `seed`. The training digits are split in two
  halves by the same seed: the first is the source, the second (textured) the unlabelled target, so
  the two domains never show the same digit image; the held-out digits, textured with their own
  draws, are the target's test split (and, plain, the source's held-out examples).
- `digits_mnist`: scikit-learn's 8x8 digits <-> MNIST, both resized to `image_size` (`direction`).

The source's labelled examples are the training split; the target's training images form the
side stream `target` (genrun.data.bundle.SideStream, no labels), drawn beside every batch;
the test split is the target's held-out images with their labels (what target_accuracy scores).
`train_domain=target` trains on the target's labelled images instead (the train-on-target bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from genrun.data.bundle import Batch, DataBundle, SideStream
from genrun.data.digits import load_digits
from genrun.data.vision import torchvision_dataset
from genrun.errors import GenrunError
from genrun.ranges import OpenUnit, PositiveInt, Seed

STREAM = "target"
DOMAINS = ("source", "target")
CHUNK = 1000  # textures made at once (bounded memory)


@dataclass
class DomainBundle(DataBundle):
    """Source-domain training data, the target domain's images as the side stream `target`, the
    target's held-out images as the test split, and the source's held-out images beside them."""

    target_domain: str | None = None  # what the target domain is, in words
    source_test: Tensor | None = None
    source_test_labels: Tensor | None = None

    def source_examples(self, n: int) -> Batch | None:
        """The first n held-out examples of the source domain (on the CPU), or None."""
        if self.source_test is None:
            return None
        return {"x": self.decode(self.source_test[:n]), "y": self.source_test_labels[:n]}


def value_noise(n: int, size: int, generator: torch.Generator, octaves: int = 5) -> Tensor:
    """[n, 3, size, size] fractal value noise in [0, 1] per image and channel: random fields of 2, 4,
    8, ... cells upsampled (bicubic) to `size` and summed with halving amplitudes."""
    field = torch.zeros(n, 3, size, size)
    for octave in range(octaves):
        cells = min(2 ** (octave + 1), size)
        coarse = torch.rand(n, 3, cells, cells, generator=generator)
        field += 0.5**octave * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    low = field.amin(dim=(2, 3), keepdim=True)
    high = field.amax(dim=(2, 3), keepdim=True)
    return (field - low) / (high - low).clamp_min(1e-6)


def procedural_textures(n: int, size: int, generator: torch.Generator) -> Tensor:
    """[n, 3, size, size] colour textures in [0, 1]: value noise whose channels are mixed by a random
    colour matrix, at a random contrast (0.2 to 1) and brightness, so that, as with photo patches,
    backgrounds range from dark (the blended digit stays bright) to light (it turns dark)."""
    noise = value_noise(n, size, generator)
    mixing = torch.rand(n, 3, 3, generator=generator)
    mixing = mixing / mixing.sum(2, keepdim=True)
    coloured = torch.einsum("ncd,ndhw->nchw", mixing, noise)
    contrast = 0.2 + 0.8 * torch.rand(n, 1, 1, 1, generator=generator)
    brightness = torch.rand(n, 1, 1, 1, generator=generator) * (1 - contrast)
    return (brightness + contrast * coloured).clamp(0, 1)


def blend_over_textures(digits: Tensor, generator: torch.Generator) -> Tensor:
    """uint8 grey digits [N, 1, H, W] -> uint8 [N, 3, H, W]: |texture - digit| per channel (MNIST-M's blend)."""
    out = torch.empty(len(digits), 3, *digits.shape[-2:], dtype=torch.uint8)
    for i in range(0, len(digits), CHUNK):
        d = digits[i:i + CHUNK].float() / 255.0
        texture = procedural_textures(len(d), digits.shape[-1], generator)
        out[i:i + CHUNK] = ((texture - d).abs() * 255).round().to(torch.uint8)
    return out


def as_colour(x: Tensor) -> Tensor:
    """Grey images [N, 1, H, W] as three equal channels."""
    return x.expand(-1, 3, -1, -1).contiguous()


def check_domain(train_domain: str) -> None:
    if train_domain not in DOMAINS:
        raise GenrunError(f"dataset.train_domain={train_domain!r}: valid: source (adaptation), target (train on "
                          "the target's labels: the upper bound)")


def domain_bundle(source: tuple[Tensor, Tensor, Tensor, Tensor], target: tuple[Tensor, Tensor, Tensor, Tensor],
                  description: str, train_domain: str, pixels: tuple[float, float] | None) -> DomainBundle:
    """(train x, train y, test x, test y) of each domain -> the bundle (train_domain=target: the target's
    labelled training images train, and are the side stream too)."""
    check_domain(train_domain)
    x, y = (source[0], source[1]) if train_domain == "source" else (target[0], target[1])
    return DomainBundle(train=x, labels=y, test=target[2], test_labels=target[3],
                        streams={STREAM: SideStream(target[0])}, target_domain=description,
                        source_test=source[2], source_test_labels=source[3], pixels=pixels)


def mnist_textured(root: str, download: bool = False, image_size: PositiveInt = 32, train_split: str = "train",
                   held_out: OpenUnit = 0.1, seed: Seed = 0, train_domain: str = "source") -> DomainBundle:
    """MNIST (grey, as 3 channels) -> MNIST blended over procedural colour textures, as uint8 in memory."""
    digits = torchvision_dataset("MNIST", root, download, image_size, 1, train_split, held_out)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(digits.train), generator=g)
    half = len(order) // 2
    src, tgt = order[:half], order[half:]
    target_train = blend_over_textures(digits.train[tgt], g)
    target_test = blend_over_textures(digits.test, g)
    return domain_bundle(
        (as_colour(digits.train[src]), digits.labels[src], as_colour(digits.test), digits.test_labels),
        (target_train, digits.labels[tgt], target_test, digits.test_labels),
        "MNIST blended over procedural colour textures (MNIST-M-like)", train_domain, digits.pixels)


def float_pixels(data: DataBundle) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A bundle's (train x, train y, test x, test y) as float images in its range."""
    return data.decode(data.train).float(), data.labels, data.decode(data.test).float(), data.test_labels


def digits_mnist(root: str, download: bool = False, image_size: PositiveInt = 16, direction: str = "digits_to_mnist",
                 train_split: str = "train", held_out: OpenUnit = 0.1, train_domain: str = "source") -> DomainBundle:
    """scikit-learn's digits <-> MNIST at `image_size` px in [-1, 1] (`direction`: digits_to_mnist or
    mnist_to_digits); each set keeps its own held-out split."""
    directions = ("digits_to_mnist", "mnist_to_digits")
    if direction not in directions:
        raise GenrunError(f"dataset.direction={direction!r}: valid: {', '.join(directions)}")
    digits = float_pixels(load_digits(image_size))
    mnist = float_pixels(torchvision_dataset("MNIST", root, download, image_size, 1, train_split, held_out))
    source, target = (digits, mnist) if direction == "digits_to_mnist" else (mnist, digits)
    name = "MNIST (from scikit-learn's digits)" if direction == "digits_to_mnist" else "scikit-learn's digits (from MNIST)"
    return domain_bundle(source, target, name, train_domain, None)

