"""Translation datasets built offline from any image set: paired tasks, unpaired domains, a user's pairs.

Every translation dataset is a DataBundle whose examples (`x`, labels `y`) are the *targets*
(the domain the outputs should belong to: what FID, the classifier and the real-vs-real floor
read, as for any dataset), with their inputs beside them in `DataBundle.inputs` (an `Inputs`).
A batch then carries:
    x        the target images             y        their class labels (labelled sources)
    input    the images to translate       input_y  their class labels
    mask     1 in the hole (task=masked)
Paired data gives example i's own input; unpaired data draws its inputs from the other domain
in an order of their own (each pass over that domain a permutation seeded by the dataset's seed
and the pass, indexed by the stream's position): no state beyond the stream's, so a resumed run
draws the same inputs. Everything is built from 8-bit pixels and kept as uint8 on the device.

- `paired_task`: `dataset=paired dataset.source=mnist dataset.task=edges|lowres|masked|grey2colour|inverted`
- `unpaired_task`: `dataset=unpaired dataset.source=A dataset.target=B|inverted|tinted|edges`; with a
  transform, the source's images are split in two halves (seeded) so that no image is in both domains
- `paired_folders`: `dataset=paired_folders dataset.inputs=DIR dataset.targets=DIR`, matched by file name
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import Batch, DataBundle, epoch_permutation
from genrun.data.sources import Images, image_options, is_folder, read_images
from genrun.data.tasks import (
    UNPAIRED_TRANSFORMS,
    TaskSpec,
    block_masks,
    centre_mask,
    check_mask,
    downsample,
    edge_inputs,
    fill_holes,
    luma,
    task_seed,
    tint,
    to_pixels,
    unit,
    with_channels,
)
from genrun.errors import GenrunError
from genrun.ranges import OpenUnit, PositiveInt, Seed, UnitInterval

log = logging.getLogger("genrun")

CHUNK = 10_000  # images transformed at once (bounded memory on large sets)


class Inputs:
    """The input half of a translation dataset (DataBundle.inputs): per split, uint8 input images,
    their labels (or None) and, for task=masked, uint8 hole masks. `aligned`: input i belongs to
    target i (paired); otherwise a training batch's inputs come from their own seeded stream."""

    def __init__(self, images: Mapping[str, Tensor], labels: Mapping[str, Tensor | None],
                 masks: Mapping[str, Tensor] | None = None, aligned: bool = True, seed: int = 0,
                 pixels: tuple[float, float] = (-1.0, 1.0), border: int = 0) -> None:
        self.images, self.labels = dict(images), dict(labels)
        self.masks = dict(masks) if masks is not None else None
        self.aligned, self.seed, self.pixels = aligned, seed, pixels
        self.border = border  # pixels PSNR/SSIM crop at each edge: the scale factor of super-resolution
        self._permutation: tuple[int, Tensor] | None = None  # the current pass of the unpaired stream

    def decode(self, x: Tensor) -> Tensor:
        low, high = self.pixels
        return x.float().mul_((high - low) / 255.0).add_(low)

    def rows(self, split: str, index: Tensor | slice) -> Batch:
        """input, input_y and mask of the given rows of a split."""
        batch = {"input": self.decode(self.images[split][index])}
        if self.labels.get(split) is not None:
            batch["input_y"] = self.labels[split][index]
        if self.masks is not None:
            batch["mask"] = self.masks[split][index].float()
        return batch

    def examples(self, n: int, split: str) -> Batch:
        """The inputs of a split's first n targets: their own (aligned), else the input domain's first
        n images (from its start again when it has fewer); nothing for a split it lacks."""
        if split not in self.images:
            return {}
        size = len(self.images[split])
        return self.rows(split, slice(0, n) if self.aligned or n <= size else torch.arange(n) % size)

    def batch(self, idx: Tensor, positions: Tensor) -> Batch:
        """A training batch's inputs: the rows of its targets (`idx`) when aligned, else the rows at
        `positions` of the endless stream of the input domain's seeded passes."""
        if self.aligned:
            return self.rows("train", idx)
        return self.rows("train", self.stream_rows(positions.cpu()).to(idx.device))

    def stream_rows(self, positions: Tensor) -> Tensor:
        """Row of each position of the unpaired stream: pass p = position // n visits the domain in
        the order epoch_permutation(n, seed, p), a function of the position alone (resumable)."""
        n = len(self.images["train"])
        passes, within = positions // n, positions % n
        rows = torch.empty_like(positions)
        for p in torch.unique(passes).tolist():
            if self._permutation is None or self._permutation[0] != p:
                self._permutation = (p, epoch_permutation(n, self.seed + 7, p))
            chosen = passes == p
            rows[chosen] = self._permutation[1][within[chosen]]
        return rows

    def to(self, device: torch.device) -> Inputs:
        """The same inputs held on `device` (the stream's batches are indexed there)."""
        def moved(d: Mapping[str, Tensor | None] | None) -> dict[str, Tensor | None] | None:
            return None if d is None else {k: v.to(device) if v is not None else None for k, v in d.items()}

        return Inputs(moved(self.images), moved(self.labels), moved(self.masks), self.aligned, self.seed, self.pixels,
                      self.border)

    def hold_out(self, n: int, total: int) -> Inputs:
        """The inputs once the last n of `total` training targets became a validation split: aligned
        inputs are cut at the same place, an unpaired domain loses the same share of its own."""
        size = len(self.images["train"])
        k = n if self.aligned else max(1, round(n * size / total))
        if not 0 < k < size:
            raise GenrunError(f"dataset.validation={n}: leaves no training inputs ({size} in all)")

        def cut(d: Mapping[str, Tensor | None] | None) -> dict[str, Tensor | None] | None:
            if d is None:
                return None
            train = d["train"]
            return {**d, "train": train[:size - k] if train is not None else None,
                    "validation": train[size - k:] if train is not None else None}

        return Inputs(cut(self.images), cut(self.labels), cut(self.masks), self.aligned, self.seed, self.pixels,
                      self.border)

    def domain(self) -> DataBundle:
        """The input domain as a dataset of its own (e.g. for a classifier of it)."""
        return DataBundle(train=self.images["train"], labels=self.labels.get("train"), test=self.images.get("test"),
                          test_labels=self.labels.get("test"), pixels=self.pixels)

    @property
    def labelled(self) -> bool:
        return all(self.labels.get(s) is not None for s in self.images)


def check_labels(label_metric: str | None, labelled: bool, what: str) -> None:
    """metrics label_preservation needs class labels: without them, one line before any training."""
    if label_metric and not labelled:
        raise GenrunError(f"metrics: label_preservation needs class labels, and {what} has none (images in one "
                          "subfolder per class give them); leave it out, e.g. metrics=[paired,fid,kid]")


def source_options(image_size: int, channels: int, root: str, download: bool, train_split: str,
                   held_out: float) -> dict[str, Any]:
    return {"image_size": image_size, "channels": channels, "root": root, "download": download,
            "train_split": train_split, "held_out": held_out}


def in_chunks(fn: Callable[[Tensor], tuple[Tensor, ...]], x: Tensor) -> tuple[Tensor, ...]:
    """fn over CHUNK images at a time, its outputs concatenated (bounded memory on large sets)."""
    parts = [fn(x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)]
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))


# -- paired tasks ------------------------------------------------------------------------------
def paired_task(source: str, task: str, image_size: PositiveInt, channels: PositiveInt, scale: PositiveInt = 4,
                edge_threshold: UnitInterval = 0.25, mask: str = "centre", mask_size: PositiveInt | None = None,
                blocks: PositiveInt = 3, seed: Seed = 0, held_out: OpenUnit = 0.1, root: str = "data",
                download: bool = False, train_split: str = "train", label_metric: str | None = None) -> DataBundle:
    """Targets: the images of `source`; inputs: made from them by `task` (genrun.data.tasks)."""
    spec = TaskSpec(task, channels, image_size, scale)
    mask_size = mask_size or image_size // 2  # the paper's hole: the centre square of half the side
    if task == "masked":
        check_mask(mask, mask_size, image_size)
    images = read_images(source, source_options(image_size, channels, root, download, train_split, held_out), seed)
    check_labels(label_metric, images.labelled, f"dataset.source={source}")
    fill = unit(images.train).mean((0, 2, 3))  # the hole's fill: the training targets' mean pixel
    targets, inputs, labels, masks = {}, {}, {}, {}
    for split in ("train", "test"):
        x, y = images.split(split)
        generator = task_seed(seed, split)

        def make(chunk: Tensor, g: torch.Generator = generator) -> tuple[Tensor, ...]:
            return make_pair(spec, unit(chunk), images.native_channels, fill, edge_threshold, mask, mask_size,
                             blocks, g)

        target, inp, hole = in_chunks(make, x)
        targets[split], inputs[split], labels[split] = to_pixels(target), to_pixels(inp), y
        masks[split] = hole
    return DataBundle(train=targets["train"], labels=labels["train"], test=targets["test"], test_labels=labels["test"],
                      pixels=(-1.0, 1.0),
                      inputs=Inputs(inputs, labels, masks if spec.masked else None, aligned=True, seed=seed,
                                    border=spec.border))


def make_pair(spec: TaskSpec, x: Tensor, native_channels: int, fill: Tensor, edge_threshold: float, mask: str,
              mask_size: int, blocks: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(target, input, hole mask) of unit-valued source images for one task (the mask is empty
    except for task=masked)."""
    hole = torch.zeros(len(x), 1, *x.shape[-2:], dtype=torch.uint8)
    target = x
    if spec.task == "edges":
        inp = edge_inputs(x, edge_threshold)
    elif spec.task == "lowres":
        inp = downsample(x, spec.scale)
    elif spec.task == "masked":
        hole = centre_mask(len(x), spec.image_size, mask_size) if mask == "centre" else \
            block_masks(len(x), spec.image_size, mask_size, blocks, generator)
        inp = fill_holes(x, hole, fill)
    elif spec.task == "grey2colour":
        target = tint(x, generator) if native_channels == 1 else x
        inp = luma(target)
    else:  # inverted
        inp = 1 - x
    return target, inp, hole


# -- unpaired domains ------------------------------------------------------------------------------
def unpaired_task(source: str, target: str, image_size: PositiveInt, channels: PositiveInt, seed: Seed = 0,
                  held_out: OpenUnit = 0.1, root: str = "data", download: bool = False, train_split: str = "train",
                  edge_threshold: UnitInterval = 0.25, label_metric: str | None = None) -> DataBundle:
    """Domain A (inputs) from `source`; domain B (targets) from `target`: another image set or
    folder, or a transform (inverted, tinted, edges) of the other half of the source's images."""
    options = source_options(image_size, channels, root, download, train_split, held_out)
    a = read_images(source, options, seed)
    if target in UNPAIRED_TRANSFORMS:
        if target == "tinted" and channels != 3:
            raise GenrunError(f"dataset.target=tinted makes colour images: set dataset.channels=3, not {channels}")
        a, b = halves(a, target, channels, edge_threshold, seed)
    elif is_folder(target) or target in image_options():
        b = read_images(target, options, seed + 1, key="dataset.target")
    else:
        raise GenrunError(f"dataset.target={target!r}: valid: a transform of the source ({', '.join(UNPAIRED_TRANSFORMS)}), "
                          f"an image set ({', '.join(image_options())}) or a folder path")
    check_labels(label_metric, a.labelled and b.labelled,
                 f"dataset.source={source}" if not a.labelled else f"dataset.target={target}")
    inputs = Inputs({"train": a.train, "test": a.test}, {"train": a.train_labels, "test": a.test_labels},
                    aligned=False, seed=seed)
    return DataBundle(train=b.train, labels=b.train_labels, test=b.test, test_labels=b.test_labels,
                      pixels=(-1.0, 1.0), inputs=inputs)


def halves(images: Images, transform: str, channels: int, edge_threshold: float, seed: int) -> tuple[Images, Images]:
    """Each split's images in two seeded halves: the first stays, the second is transformed (no
    image is in both domains)."""
    parts: dict[str, list[tuple[Tensor, Tensor | None]]] = {"a": [], "b": []}
    for split in ("train", "test"):
        x, y = images.split(split)
        generator = task_seed(seed, split, what=7)
        order = torch.randperm(len(x), generator=generator)
        first, second = order[: len(x) // 2], order[len(x) // 2:]
        parts["a"].append((x[first], y[first] if y is not None else None))
        changed = unpaired_transform(unit(x[second]), transform, channels, edge_threshold, generator)
        parts["b"].append((to_pixels(changed), y[second] if y is not None else None))
    (a_train, a_train_y), (a_test, a_test_y) = parts["a"]
    (b_train, b_train_y), (b_test, b_test_y) = parts["b"]
    return (Images(a_train, a_train_y, a_test, a_test_y, images.native_channels, images.name),
            Images(b_train, b_train_y, b_test, b_test_y, images.native_channels, transform))


def unpaired_transform(x: Tensor, transform: str, channels: int, edge_threshold: float,
                       generator: torch.Generator) -> Tensor:
    """Domain B's images from unit-valued source images."""
    if transform == "inverted":
        return 1 - x
    if transform == "tinted":
        return tint(x, generator)
    return with_channels(edge_inputs(x, edge_threshold), channels)


# -- a user's pairs ------------------------------------------------------------------------------
def paired_folders(inputs: str | None, targets: str | None, image_size: PositiveInt = 64, channels: PositiveInt = 3,
                   input_size: PositiveInt | None = None, input_channels: PositiveInt | None = None,
                   held_out: OpenUnit = 0.1, seed: Seed = 0, label_metric: str | None = None) -> DataBundle:
    """Pairs of a folder of inputs and a folder of targets, matched by their paths without the
    extension (a.png in one with a.jpg in the other); class labels from the targets' first-level
    subfolders when every target has one. A seeded `held_out` fraction of the pairs is held out."""
    from genrun.data.vision import IMAGE_SUFFIXES

    folders = {"inputs": inputs, "targets": targets}
    files = {}
    for key, folder in folders.items():
        if not folder or not Path(folder).expanduser().is_dir():
            raise GenrunError(f"dataset.{key}={folder!r}: must be a folder of images "
                              "(dataset=paired_folders dataset.inputs=DIR dataset.targets=DIR)")
        root = Path(folder).expanduser()
        files[key] = {p.relative_to(root).with_suffix("").as_posix(): p for p in sorted(root.rglob("*"))
                      if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    names = sorted(files["inputs"].keys() & files["targets"].keys())
    if not names:
        examples = {k: next(iter(v), "none") for k, v in files.items()}
        raise GenrunError(f"dataset.inputs={inputs} and dataset.targets={targets} share no file names (matched by "
                          f"path without the extension): {len(files['inputs'])} inputs (e.g. {examples['inputs']}), "
                          f"{len(files['targets'])} targets (e.g. {examples['targets']})")
    unmatched = len(files["inputs"]) + len(files["targets"]) - 2 * len(names)
    if unmatched:
        log.warning("dataset=paired_folders: %d image(s) without a partner of the same name are left out", unmatched)
    x_in = read_files([files["inputs"][n] for n in names], input_size or image_size, input_channels or channels)
    x_out = read_files([files["targets"][n] for n in names], image_size, channels)
    classes = [n.split("/")[0] if "/" in n else None for n in names]
    y = None
    if all(c is not None for c in classes):
        index = {c: i for i, c in enumerate(sorted(set(classes)))}
        y = torch.tensor([index[c] for c in classes], dtype=torch.long)
    check_labels(label_metric, y is not None, f"dataset.targets={targets}")
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed))
    n_held = max(1, int(round(len(names) * held_out)))
    if n_held >= len(names):
        raise GenrunError(f"dataset=paired_folders: {len(names)} pair(s) are too few to hold {n_held} out")
    train, test = order[:-n_held], order[-n_held:]

    def labels_of(rows: Tensor) -> Tensor | None:
        return y[rows] if y is not None else None

    scale = x_out.shape[-1] // x_in.shape[-1]
    inputs_ = Inputs({"train": x_in[train], "test": x_in[test]}, {"train": labels_of(train), "test": labels_of(test)},
                     border=scale if scale > 1 else 0)
    return DataBundle(train=x_out[train], labels=labels_of(train), test=x_out[test], test_labels=labels_of(test),
                      pixels=(-1.0, 1.0), inputs=inputs_)


def read_files(paths: list[Path], size: int, channels: int) -> Tensor:
    """Image files as uint8 [N, channels, size, size] (resized and centre-cropped as image_folder does)."""
    from PIL import Image

    from genrun.data.vision import image_transform

    transform = image_transform(size, channels)
    images = []
    for path in paths:
        with Image.open(path) as im:
            images.append(transform(im))
    return to_pixels((torch.stack(images) + 1) / 2)
