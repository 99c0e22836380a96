"""Stacked MNIST's mode metrics (Metz et al. 2017; the PacGAN and VEEGAN protocol).

Each of a sample's three channels is classified by a digit classifier trained on the
dataset's own channels; the three digits name one of 1,000 modes. `modes` counts the modes
with at least one sample, `kl` is KL(mode histogram || uniform over 1,000) in nats.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.metrics.base import EvalContext, Metric, in_chunks
from genrun.metrics.classifier import MAX_EXAMPLES, ClassifierNet, labelled_split, load_or_train
from genrun.metrics.distances import kl_to_reference

CHANNELS, DIGITS = 3, 10
N_MODES = DIGITS**CHANNELS


def channel_digits(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Stacked images [N, 3, H, W] with labels d0*100 + d1*10 + d2 -> 3N one-channel digits and labels."""
    images = torch.cat([x[:, c:c + 1] for c in range(CHANNELS)])
    labels = torch.cat([(y // DIGITS ** (CHANNELS - 1 - c)) % DIGITS for c in range(CHANNELS)])
    return images, labels


def modes_of(predicted: Tensor) -> Tensor:
    """[N, 3] predicted digits -> mode index d0*100 + d1*10 + d2."""
    return (predicted * torch.tensor([DIGITS**2, DIGITS, 1], device=predicted.device)).sum(1)


def mode_counts_metrics(modes: Tensor) -> dict[str, float]:
    """`modes` (with >= 1 sample) and `kl` to the uniform histogram over the 1,000 modes."""
    counts = torch.bincount(modes, minlength=N_MODES).double()
    return {"modes": int((counts > 0).sum()), "kl": kl_to_reference(counts, torch.ones(N_MODES))}


def is_stacked(data: DataBundle) -> bool:
    batch = data.examples(64)
    y = batch.get("y")
    return batch["x"].dim() == 4 and batch["x"].shape[1] == CHANNELS and y is not None and bool(
        ((y >= 0) & (y < N_MODES)).all())


class StackedModes(Metric):
    """Modes out of 1,000 and KL to uniform of the samples of a stacked-MNIST model."""

    name = "stacked_modes"
    better = {"modes": "higher", "kl": "lower"}
    needs = ()

    def __init__(self) -> None:
        self.net: ClassifierNet | None = None
        self.info: dict[str, Any] = {}
        self._data_id: int | None = None

    def missing(self, ctx: EvalContext) -> str | None:
        if not is_stacked(ctx.data):
            return "the data is not stacked MNIST (3 channels, labels d0*100 + d1*10 + d2)"
        return None

    def digit_classifier(self, ctx: EvalContext) -> ClassifierNet:
        """Trained (or loaded from the cache) on the dataset's channels, once per dataset."""
        if self.net is None or self._data_id != id(ctx.data):
            train = labelled_split(ctx.data, "train", MAX_EXAMPLES // CHANNELS)
            test = labelled_split(ctx.data, "test", MAX_EXAMPLES // CHANNELS) or train
            x, y = channel_digits(*train)
            held_x, held_y = channel_digits(*test)
            self.net, self.info = load_or_train(x, y, held_x, held_y, ctx.value_range, ctx.device)
            self._data_id = id(ctx.data)
        return self.net

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        net = self.digit_classifier(ctx)
        fake = ctx.fake
        digits = torch.stack([in_chunks(lambda b: net(b.to(ctx.device)).argmax(1), fake[:, c:c + 1]).long()
                              for c in range(CHANNELS)], 1)
        return mode_counts_metrics(modes_of(digits))

    def protocol(self) -> dict[str, Any]:
        return {"digit_classifier": {k: self.info.get(k) for k in ("accuracy", "weights_sha256", "train_examples")}}
