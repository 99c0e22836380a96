"""A labelled subset of the training split, for semi-supervised learning (`dataset.labels_per_class`).

`labels_per_class` examples of every class are chosen from the training split (after the
validation split is held out and the images binarised) by a generator seeded with
`dataset.label_seed`, so a run, its resume and any other run with the same seed train on the
same labelled examples. They are drawn beside every training batch as a side stream
(`x_labelled`, `y_labelled`, genrun.data.bundle.SideStream); the training batches themselves
then carry no labels at all, so a family cannot read a label outside the subset by accident.
The labelled examples stay in the training split: they are part of the unlabelled stream too,
as in Salimans et al.'s code (its unlabelled batches are drawn from all 60,000 training images).
Metrics read the data's labels as before (they measure the model; they do not train it).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle, SideStream
from genrun.errors import GenrunError
from genrun.ranges import PositiveInt, Seed

STREAM = "labelled"


def training_labels(data: DataBundle) -> Tensor:
    """The training split's labels (in memory, or read from a dataset's examples); an error without."""
    if data.labels is not None:
        return data.labels.long().cpu()
    labels = getattr(data.train, "labels", None)
    if isinstance(data.train, Tensor) or labels is None:
        raise GenrunError("dataset.labels_per_class needs a labelled dataset (digits, mnist, fashion_mnist, "
                          "cifar10, or an image_folder with one subfolder per class); this one has no labels")
    return torch.as_tensor(labels, dtype=torch.long)


def choose_per_class(labels: Tensor, per_class: int, seed: int) -> Tensor:
    """`per_class` indices of every class, drawn without replacement by a generator seeded with
    `seed`; sorted (class by class, ascending within a class). An error when a class has fewer."""
    classes = torch.unique(labels[labels >= 0])
    if len(classes) < 2:
        raise GenrunError(f"dataset.labels_per_class={per_class}: the training split has {len(classes)} "
                          "class(es); a labelled subset needs at least 2")
    counts = {int(c): int((labels == c).sum()) for c in classes}
    fewest = min(counts, key=counts.get)
    if per_class > counts[fewest]:
        raise GenrunError(f"dataset.labels_per_class={per_class} but class {fewest} has only {counts[fewest]} "
                          f"training examples; valid: 1 to {counts[fewest]}")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes.tolist():
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=g)[:per_class]].sort().values)
    return torch.cat(chosen)


def examples_at(data: DataBundle, indices: Tensor) -> Tensor:
    """The training examples at `indices`, as stored (uint8 pixels stay uint8)."""
    if isinstance(data.train, Tensor):
        return data.train[indices].clone()
    return torch.stack([data.train[int(i)][0] for i in indices])


def labelled_subset(data: DataBundle, per_class: PositiveInt, seed: Seed = 0) -> DataBundle:
    """The bundle with `per_class` labelled examples of every class as the side stream `labelled`
    and the training batches' labels hidden."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise GenrunError(f"dataset.labels_per_class={per_class!r}: must be a positive integer (>= 1)")
    labels = training_labels(data)
    indices = choose_per_class(labels, per_class, seed)
    stream = SideStream(examples_at(data, indices), labels[indices].clone(), indices)
    return replace(data, streams={**data.streams, STREAM: stream}, train_labels_hidden=True)
