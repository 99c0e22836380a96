"""Held-out metrics of an autoencoding model: reconstruction error and linear probes of its codes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.metrics.heldout import in_chunks, split_batch
from genrun.metrics.probe import probe_accuracies


def autoencoder_metrics(encode: Callable[[Tensor], Tensor], decode: Callable[[Tensor], Tensor], data: DataBundle,
                        device: torch.device) -> dict[str, float]:
    """`recon_mse` (mean squared error per value, data space, held-out split) of decode(encode(x)),
    and the probes of probe_accuracies; {} without a held-out split. Call in eval mode."""
    test = split_batch(data, "test", device)
    if test is None:
        return {}
    squared = in_chunks(lambda b: (decode(encode(b["x"])) - b["x"]).pow(2).flatten(1).mean(1), test)
    return {"recon_mse": float(squared.mean()), **probe_accuracies(lambda b: encode(b["x"]), data, device)}
