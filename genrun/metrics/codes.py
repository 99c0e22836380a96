"""Agreement of an unsupervised discrete code with class labels (e.g. InfoGAN's categorical code)."""

from __future__ import annotations

import torch
from torch import Tensor


def matched_accuracy(codes: Tensor, labels: Tensor) -> float:
    """Accuracy of `codes` as labels under the best one-to-one map of code values to classes.

    The map maximises the matched counts of the confusion matrix (Hungarian algorithm, via
    scipy's linear_sum_assignment); codes left without a class count as errors.
    """
    from scipy.optimize import linear_sum_assignment

    codes, labels = codes.long().cpu(), labels.long().cpu()
    k = int(max(codes.max(), labels.max())) + 1
    confusion = torch.bincount(codes * k + labels, minlength=k * k).view(k, k)
    rows, cols = linear_sum_assignment(confusion.numpy(), maximize=True)
    return float(confusion[rows, cols].sum()) / len(labels)
