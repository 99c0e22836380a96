"""What every dataset builder returns, and the resumable batch stream the loop draws from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from genrun.errors import GenrunError

Batch = dict[str, Tensor]


@dataclass
class SideStream:
    """Examples drawn beside every training batch, as `x_<name>` (and `y_<name>`): a labelled subset
    (semi-supervised learning), a second domain (domain adaptation). Each batch takes as many as the
    main stream, in epoch permutations of their own, so the stream's position is one number."""

    x: Tensor
    y: Tensor | None = None
    indices: Tensor | None = None  # where its examples sit in the training split, when they come from it


@dataclass
class DataBundle:
    """A training set plus what metrics need to know about it.

    `train` is either a tensor of examples (small data: kept on the device, indexed directly)
    or a torch Dataset of (x, y) pairs (image data: read through a DataLoader). Three splits:
    `train` trains; `validation` (optional, `dataset.validation`) is held out of training to
    choose checkpoints by; `test` is held out for the numbers a run reports.
    """

    train: Tensor | Dataset
    labels: Tensor | None = None
    test: Tensor | Dataset | None = None  # held-out examples, for end-of-run metrics
    test_labels: Tensor | None = None
    validation: Tensor | Dataset | None = None  # held out of training, for eval_every and best.pt
    validation_labels: Tensor | None = None
    modes: Tensor | None = None  # mixture centres, for the 2D mode metrics
    sigma: float | None = None  # mixture standard deviation
    binarize: str = "none"  # none, static or dynamic (genrun.data.binarize); dynamic: Batches draws
    value_range: tuple[float, float] | None = None  # pixel range of binarised images
    pixels: tuple[float, float] | None = None  # uint8 tensors, scaled to this range per batch
    # translation datasets: the input of each example (batch keys input, input_y, mask), genrun.data.pairs.Inputs
    inputs: Any = None
    streams: dict[str, SideStream] = field(default_factory=dict)  # drawn beside each batch (x_<name>, y_<name>)
    train_labels_hidden: bool = False  # training batches carry no "y" (a family sees labels only in a stream)

    def decode(self, x: Tensor) -> Tensor:
        """Stored examples -> model inputs: uint8 pixels scaled to `pixels`, anything else as is."""
        if x.dtype != torch.uint8 or self.pixels is None:
            return x
        low, high = self.pixels
        return x.float().mul_((high - low) / 255.0).add_(low)

    def __len__(self) -> int:
        return len(self.train)

    def split(self, name: str) -> tuple[Tensor | Dataset | None, Tensor | None]:
        """(examples, labels) of split `name`: train, validation or test (None where it has none)."""
        splits = {"train": (self.train, self.labels), "validation": (self.validation, self.validation_labels),
                  "test": (self.test, self.test_labels)}
        if name not in splits:
            raise GenrunError(f"split {name!r}: valid: {', '.join(splits)}")
        return splits[name]

    def has(self, split: str) -> bool:
        return self.split(split)[0] is not None

    def examples(self, n: int, split: str = "train") -> Batch:
        """The first n examples of a split as a batch {"x", "y"?} (on the CPU)."""
        data, labels = self.split(split)
        if data is None:
            raise GenrunError(f"this dataset has no {split} split")
        n = min(n, len(data))
        if isinstance(data, Tensor):
            batch = {"x": self.decode(data[:n])}
            if labels is not None:
                batch["y"] = labels[:n]
        else:
            items = [data[i] for i in range(n)]
            batch = {"x": torch.stack([x for x, _ in items]), "y": torch.tensor([int(y) for _, y in items])}
        if split == "train" and self.binarize == "dynamic":  # one fixed draw of what training sees
            batch["x"] = bernoulli_pixels(batch["x"], *self.value_range, torch.Generator().manual_seed(0))
        if self.inputs is not None:
            batch.update(self.inputs.examples(len(batch["x"]), split))
        return batch


def has_class_labels(y: Tensor | None) -> bool:
    """Labels of at least two classes, none of them missing (-1 marks an unlabelled example)."""
    return y is not None and bool((y >= 0).all()) and len(torch.unique(y)) >= 2


def hold_out_validation(data: DataBundle, n: int) -> DataBundle:
    """The bundle with the last `n` training examples moved to a validation split (0: unchanged)."""
    if n == 0:
        return data
    if not 0 < n < len(data.train):
        raise GenrunError(f"dataset.validation={n}: must be between 0 and the training split's size "
                          f"({len(data.train)} examples) minus one")
    keep = len(data.train) - n
    if isinstance(data.train, Tensor):
        labels = data.labels
        inputs = data.inputs.hold_out(n, len(data.train)) if data.inputs is not None else None
        return replace(data, train=data.train[:keep], labels=labels[:keep] if labels is not None else None,
                       validation=data.train[keep:], validation_labels=labels[keep:] if labels is not None else None,
                       inputs=inputs)
    return replace(data, train=Subset(data.train, range(keep)), validation=Subset(data.train, range(keep, len(data.train))))


def bernoulli_pixels(x: Tensor, low: float, high: float, rng: torch.Generator | None = None) -> Tensor:
    """Pixels in [low, high] -> low or high, high with probability (x - low) / (high - low)."""
    p = ((x - low) / (high - low)).clamp(0, 1)
    return low + (high - low) * torch.bernoulli(p, generator=rng)


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The order of epoch `epoch`: a function of (seed, epoch) only, so it needs no saved state."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class Batches:
    """An endless stream of shuffled batches whose position (epoch, batch index) is saved.

    Every epoch visits each example once (the last incomplete batch is dropped); resuming
    at (epoch, pos) replays exactly the batches an uninterrupted run would have drawn.
    With several processes, `batch_size` is the global batch: process `rank` of `world`
    draws its slice of it, so the slices together are the batch one process would draw.
    The data's side streams add `batch_size` examples each to every batch (`x_<name>`,
    `y_<name>`), from endless epoch permutations of their own; the count drawn is their position.
    """

    def __init__(self, data: DataBundle, batch_size: int, device: torch.device, seed: int,
                 num_workers: int = 0, rank: int = 0, world: int = 1) -> None:
        if len(data) < batch_size:
            raise GenrunError(f"trainer.batch_size={batch_size} is larger than the dataset ({len(data)} examples)")
        if batch_size % world:
            raise GenrunError(f"trainer.batch_size={batch_size} (the global batch) must divide by the number of "
                              f"processes ({world}); e.g. trainer.batch_size={batch_size // world * world or world}")
        self.data, self.batch_size, self.device, self.seed = data, batch_size, device, seed
        self.rank, self.world = rank, world
        self.num_workers = num_workers
        self.epoch, self.pos = 0, 0
        self.on_device = isinstance(data.train, Tensor)
        if self.on_device:
            self.x = data.train.to(device)
            self.y = data.labels.to(device) if data.labels is not None and not data.train_labels_hidden else None
        self.inputs = data.inputs.to(device) if data.inputs is not None and self.on_device else None
        self.streams = {name: SideStream(s.x.to(device), s.y.to(device) if s.y is not None else None, s.indices)
                        for name, s in sorted(data.streams.items())}
        self.drawn = dict.fromkeys(self.streams, 0)  # examples of each side stream drawn so far (global)
        self._stream_perms: dict[int, tuple[int, Tensor]] = {}  # stream -> (epoch, its order)
        self._iter: Iterator[Batch] | None = None
        self._data_loader: DataLoader | None = None

    @property
    def batches_per_epoch(self) -> int:
        return len(self.data) // self.batch_size

    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "pos": self.pos}
        return {**state, "streams": dict(self.drawn)} if self.streams else state

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self.drawn.update({name: int(n) for name, n in state.get("streams", {}).items() if name in self.drawn})
        self._iter = None

    def __call__(self) -> Batch:
        """The next batch, as {"x": examples, "y": labels (when the data has them)}."""
        if self._iter is None:
            self._iter = self._epoch_batches()
        batch = next(self._iter, None)
        if batch is None:
            self.epoch, self.pos = self.epoch + 1, 0
            self._iter = self._epoch_batches()
            batch = next(self._iter)
        self.pos += 1
        for i, name in enumerate(self.streams):
            batch.update(self._side_batch(i, name))
        if self.data.binarize == "dynamic":  # a fresh draw from the run's RNG, so resume replays it
            for key in [k for k in batch if k == "x" or k.startswith("x_")]:
                batch[key] = bernoulli_pixels(batch[key], *self.data.value_range)
        return batch

    def _side_batch(self, i: int, name: str) -> Batch:
        """This process's slice of the next `batch_size` examples of side stream `name`: position p
        of the stream is example perm_e[p mod n] of epoch e = p // n (a function of the seed only)."""
        stream, start = self.streams[name], self.drawn[name]
        share = self.batch_size // self.world
        positions = torch.arange(start + self.rank * share, start + (self.rank + 1) * share)
        n = len(stream.x)
        idx = torch.empty_like(positions)
        for epoch in torch.unique(positions // n).tolist():
            here = positions // n == epoch
            idx[here] = self._stream_permutation(i, n, epoch)[positions[here] % n]
        idx = idx.to(stream.x.device)
        self.drawn[name] = start + self.batch_size
        side = {f"x_{name}": self.data.decode(stream.x[idx])}
        if stream.y is not None:
            side[f"y_{name}"] = stream.y[idx]
        return side

    def _stream_permutation(self, i: int, n: int, epoch: int) -> Tensor:
        """Side stream i's order in `epoch` (of the seed only); the latest epoch's is kept."""
        if self._stream_perms.get(i, (-1, None))[0] != epoch:
            self._stream_perms[i] = (epoch, epoch_permutation(n, self.seed * 7919 + i + 1, epoch))
        return self._stream_perms[i][1]

    def _epoch_indices(self) -> Tensor:
        """The index batches of this epoch still to come, one row per batch."""
        perm = epoch_permutation(len(self.data), self.seed, self.epoch)
        n = self.batches_per_epoch
        share = self.batch_size // self.world
        rows = perm[: n * self.batch_size].view(n, self.batch_size)[self.pos :]
        return rows[:, self.rank * share : (self.rank + 1) * share]

    def _epoch_batches(self) -> Iterator[Batch]:
        chunks = self._epoch_indices()
        if self.on_device:
            for idx in chunks.to(self.device):
                x = self.data.decode(self.x[idx])
                batch = {"x": x} if self.y is None else {"x": x, "y": self.y[idx]}
                if self.inputs is not None:  # translation data: the inputs (their own stream when unpaired)
                    batch.update(self.inputs.batch(idx, self._positions()))
                yield batch
            return
        for x, y in self._loader():  # its sampler yields the rows of `_epoch_indices`, read afresh each epoch
            batch = {"x": x.to(self.device, non_blocking=True), "y": y.to(self.device, non_blocking=True)}
            if self.data.train_labels_hidden:
                del batch["y"]
            yield batch

    def _positions(self) -> Tensor:
        """This process's places in the whole stream of examples for the batch being drawn (epoch,
        pos): what an unpaired input stream is indexed by."""
        share = self.batch_size // self.world
        start = (self.epoch * self.batches_per_epoch + self.pos) * self.batch_size + self.rank * share
        return torch.arange(start, start + share)

    def _loader(self) -> DataLoader:
        """One DataLoader for the whole run (its workers persist across epochs, batches are
        pinned for the GPU); its batch sampler is this stream's current epoch."""
        if self._data_loader is None:
            sampler = EpochRows(self)
            self._data_loader = DataLoader(self.data.train, batch_sampler=sampler, num_workers=self.num_workers,
                                           pin_memory=self.device.type == "cuda",
                                           persistent_workers=self.num_workers > 0)
        return self._data_loader


class EpochRows:
    """A batch sampler over the index rows a Batches stream has still to draw this epoch."""

    def __init__(self, batches: Batches) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter([row.tolist() for row in self.batches._epoch_indices()])

    def __len__(self) -> int:
        return len(self.batches._epoch_indices())
