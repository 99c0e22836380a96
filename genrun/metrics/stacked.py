"""Stacked MNIST (Metz et al. 2017; the PacGAN and VEEGAN protocol): its feature space and its
mode metrics.

The feature space is a digit classifier trained on the dataset's own channels (one-channel
digits): a sample's features are its three channels' features side by side, and its class
logits over the 1,000 modes d0 d1 d2 are the sums of the channels' digit log-probabilities, so
that the predicted mode is the three predicted digits. `stacked_modes` counts the modes with at
least one sample (`modes`) and the KL of their histogram to uniform (`kl_to_uniform`, in nats;
runs written before this name called it `kl`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.errors import GenrunError
from genrun.metrics.base import EvalContext, Metric
from genrun.metrics.classifier import ClassifierFeatures, labelled_split
from genrun.metrics.distances import kl_to_reference

CHANNELS, DIGITS = 3, 10
N_MODES = DIGITS**CHANNELS
PLACE = torch.tensor([DIGITS**2, DIGITS, 1])  # channel 0 is the hundreds digit


def channel_digits(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Stacked images [N, 3, H, W] with labels d0*100 + d1*10 + d2 -> 3N one-channel digits and labels."""
    images = torch.cat([x[:, c:c + 1] for c in range(CHANNELS)])
    labels = torch.cat([(y // DIGITS ** (CHANNELS - 1 - c)) % DIGITS for c in range(CHANNELS)])
    return images, labels


def mode_logits(digit_log_probs: Tensor) -> Tensor:
    """[N, 3, 10] per-channel digit log-probabilities -> [N, 1000] log-probabilities of the modes
    (channels independent): mode d0*100 + d1*10 + d2 gets lp0[d0] + lp1[d1] + lp2[d2]."""
    lp = digit_log_probs
    return (lp[:, 0, :, None, None] + lp[:, 1, None, :, None] + lp[:, 2, None, None, :]).flatten(1)


def mode_counts_metrics(modes: Tensor) -> dict[str, float]:
    """`modes` (with >= 1 sample) and `kl_to_uniform`, the KL of their histogram to uniform over 1,000."""
    counts = torch.bincount(modes, minlength=N_MODES).double()
    return {"modes": int((counts > 0).sum()), "kl_to_uniform": kl_to_reference(counts, torch.ones(N_MODES))}


class ChannelClassifierFeatures(ClassifierFeatures):
    """Stacked MNIST's feature space: genrun's classifier trained on the dataset's one-channel
    digits (cached like the other classifiers), applied to each channel."""

    name = "channel_classifier"

    def examples(self, data: DataBundle) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
        """The training stacks' channels as one-channel digits (and the held-out stacks')."""
        train = labelled_split(data, "train", self.settings.max_examples // CHANNELS)
        test = labelled_split(data, "test", self.settings.held_out_examples // CHANNELS)
        if train is None or train[0].dim() != 4 or train[0].shape[1] != CHANNELS or bool((train[1] >= N_MODES).any()):
            raise GenrunError("features=channel_classifier needs stacked MNIST (3 channels, labels d0*100 + d1*10 + d2)")
        return *channel_digits(*train), *channel_digits(*(test or train)), "test" if test else "train"

    @torch.no_grad()
    def digit_log_probs(self, x: Tensor) -> Tensor:
        x = x.to(self.device).float()
        return torch.stack([torch.log_softmax(self.net(x[:, c:c + 1]), 1) for c in range(CHANNELS)], 1)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        x = x.to(self.device).float()
        return torch.cat([self.net.features(x[:, c:c + 1]) for c in range(CHANNELS)], 1)

    def logits(self, x: Tensor) -> Tensor:
        return mode_logits(self.digit_log_probs(x))

    @torch.no_grad()
    def logits_of_features(self, features: Tensor) -> Tensor:
        """The modes' logits from the three channels' features (the digit head on each)."""
        per_channel = features.to(self.device).view(len(features), CHANNELS, -1)
        return mode_logits(torch.log_softmax(self.net.head(per_channel), 2))

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "name": self.name, "applied": "to each of the 3 channels (digit accuracy above)"}


class StackedModes(Metric):
    """Modes out of 1,000 and KL to uniform of the samples' predicted modes (PacGAN: 26,000
    samples, `eval.n_fake=26000`), in the channel classifier's space (`features=auto` on stacked MNIST)."""

    name = "stacked_modes"
    better = {"kl_to_uniform": "lower", "modes": "higher"}
    needs = ("logits",)

    def missing(self, ctx: EvalContext) -> str | None:
        reason = super().missing(ctx)
        if reason is None and ctx.space.name != ChannelClassifierFeatures.name:
            return f"it counts modes with the per-channel digit classifier (features=channel_classifier), not {ctx.space.name}"
        return reason

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return mode_counts_metrics(ctx.fake_logits.argmax(1))
