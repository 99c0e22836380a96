"""Feature spaces that need no network: the raw values, and `auto`, which picks per dataset."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.metrics.base import FeatureSpace


class RawFeatures:
    """The samples themselves, flattened: the natural space of 2D mixtures and other vectors."""

    name = "raw"
    has_logits = False

    def prepare(self, data: DataBundle, value_range: tuple[float, float] | None, device: torch.device) -> None:
        self.dim = int(torch.as_tensor(data.examples(1)["x"]).flatten(1).shape[1])

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1).float()

    def logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError("raw features have no class logits")

    def protocol(self) -> dict[str, Any]:
        return {"name": self.name, "dim": getattr(self, "dim", None)}


def is_image_data(data: DataBundle) -> bool:
    """Examples with a channel and two spatial dimensions."""
    return data.examples(1)["x"].dim() == 4


def has_class_labels(data: DataBundle) -> bool:
    """The training split carries class labels (at least two classes)."""
    y = data.examples(64).get("y")
    return y is not None and bool((y >= 0).all()) and len(torch.unique(y)) >= 2


class AutoFeatures:
    """`features=auto`: the raw values for vectors (2D mixtures); for labelled images, genrun's
    own classifier; for unlabelled images none (choose `features=inception` for them)."""

    name = "auto"

    def resolve(self, data: DataBundle) -> FeatureSpace | None:
        if not is_image_data(data):
            return RawFeatures()
        if has_class_labels(data):
            from genrun.metrics.classifier import ClassifierFeatures

            return ClassifierFeatures()
        return None
