"""Metrics from a classifier's predictions on the generated samples."""

from __future__ import annotations

from typing import Any

import torch

from genrun.metrics.base import EvalContext, Metric
from genrun.metrics.distances import kl_to_reference
from genrun.ranges import PositiveInt


def class_histogram(logits: torch.Tensor) -> torch.Tensor:
    """Counts of the predicted (argmax) classes."""
    return torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double()


class ClassKL(Metric):
    """KL(predicted class histogram of the samples || that of the real examples), in nats: 0 when
    the model draws each class as often as the data does, ln K when it draws one class of K
    uniform ones. Both histograms come from the same classifier, so its errors largely cancel."""

    name = "class_kl"
    better = {"class_kl": "lower"}
    needs = ("logits",)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        reference = class_histogram(ctx.real_logits) + 1e-12  # a class the classifier never predicts on data
        return {"class_kl": kl_to_reference(class_histogram(ctx.fake_logits), reference)}


def inception_score(logits: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016): from 1 (one class, or no confident
    prediction) to K (confident predictions spread evenly over K classes)."""
    log_p = torch.log_softmax(logits.double(), 1)
    log_marginal = torch.logsumexp(log_p, 0) - torch.log(torch.tensor(float(len(log_p)), dtype=torch.float64))
    kl = (log_p.exp() * (log_p - log_marginal)).sum(1)
    return float(kl.mean().exp())


class ClassifierIS(Metric):
    """The Inception Score with genrun's classifier in place of Inception-v3 (one split)."""

    name = "cis"
    better = {"cis": "higher"}
    needs = ("logits",)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return {"cis": inception_score(ctx.fake_logits)}


def split_inception_scores(logits: torch.Tensor, splits: int) -> torch.Tensor:
    """The Inception Score of each of `splits` consecutive parts of the rows (Salimans et al. 2016
    report mean and std over 10), cut at i * N // splits as torch-fidelity does."""
    n = len(logits)
    return torch.tensor([inception_score(logits[i * n // splits:(i + 1) * n // splits]) for i in range(splits)],
                        dtype=torch.float64)


class InceptionScore(Metric):
    """`metrics=[is]`: the Inception Score of the samples in Inception-v3's logits (features=inception),
    mean and (population) std over `splits` splits of the samples, shuffled with the evaluation seed
    first so that examples stored class by class (the real-vs-real floor) do not make a split."""

    name = "is"
    better = {"is": "higher", "is_std": "lower"}
    needs = ("logits",)

    def __init__(self, splits: PositiveInt = 10) -> None:
        self.splits = splits

    def missing(self, ctx: EvalContext) -> str | None:
        reason = super().missing(ctx)
        if reason is None and ctx.space.name != "inception":
            return f"the Inception Score needs features=inception, not {ctx.space.name} (metric cis: a classifier's)"
        if reason is None and len(ctx.fake) < self.splits:
            return f"{len(ctx.fake)} samples cannot make {self.splits} splits"
        return reason

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        order = torch.randperm(len(ctx.fake_logits), generator=torch.Generator().manual_seed(ctx.seed))
        scores = split_inception_scores(ctx.fake_logits[order], self.splits)
        return {"is": float(scores.mean()), "is_std": float(scores.std(correction=0))}

    def protocol(self) -> dict[str, Any]:
        return {"splits": self.splits}
