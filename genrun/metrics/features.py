"""Feature spaces that need no network: the raw values, and `auto`, which picks per dataset."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle, has_class_labels
from genrun.metrics.base import FeatureSpace


class RawFeatures:
    """The samples themselves, flattened: the natural space of 2D mixtures and other vectors."""

    name = "raw"
    has_logits = False

    def prepare(self, data: DataBundle, value_range: tuple[float, float] | None, device: torch.device,
                budget_s: float | None = None) -> None:
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


class AutoFeatures:
    """`features=auto`: the feature space the dataset states (`dataset.features`, e.g. stacked
    MNIST's per-channel digit classifier), else the raw values for vectors (2D mixtures), genrun's
    own classifier for labelled images, and none for unlabelled images (`features=inception`)."""

    name = "auto"

    def __init__(self, preferred: FeatureSpace | None = None) -> None:
        self.preferred = preferred

    def resolve(self, data: DataBundle) -> FeatureSpace | None:
        if self.preferred is not None:
            return self.preferred
        if not is_image_data(data):
            return RawFeatures()
        if has_class_labels(data.examples(64).get("y")):
            from genrun.metrics.classifier import ClassifierFeatures

            return ClassifierFeatures()
        return None
