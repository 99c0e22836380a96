"""Linear probes: how linearly decodable the labels are from a model's codes (vs raw pixels)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from genrun.data.bundle import Batch, DataBundle
from genrun.metrics.heldout import has_labels, in_chunks, split_batch


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor) -> float:
    """Held-out accuracy of a multinomial logistic regression on standardised features."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    # one BLAS thread: on small problems more threads cost far more than they give (0.1 s vs 5 s)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(train_x.flatten(1).double().cpu().numpy(), train_y.cpu().numpy())
        return float(probe.score(test_x.flatten(1).double().cpu().numpy(), test_y.cpu().numpy()))


def probe_accuracies(encode: Callable[[Batch], Tensor], data: DataBundle, device: torch.device) -> dict[str, float]:
    """`probe_accuracy` on codes and `probe_accuracy_pixels` on the raw data: trained on the
    training split, scored on the held-out split; {} without labels or a held-out split."""
    train, test = split_batch(data, "train", device), split_batch(data, "test", device)
    if not (has_labels(train) and has_labels(test)):
        return {}
    codes = [in_chunks(encode, batch) for batch in (train, test)]
    return {
        "probe_accuracy": linear_probe(codes[0], train["y"], codes[1], test["y"]),
        "probe_accuracy_pixels": linear_probe(train["x"], train["y"], test["x"], test["y"]),
    }
