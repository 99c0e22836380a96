"""Metrics of what a model's representation is good for, on held-out data (genrun.metrics.heldout's
HeldOutMetric: each reads one method of the family, and is left out with the reason without it):
- `class_error`: `class_logits(batch)`, the test error of a family's classifier (the semi-supervised
  GAN's critic); its reference is a logistic regression on the pixels of the same labelled examples;
- `target_accuracy`: `class_logits(batch)` on the target domain of domain-adaptation data (DANN), and
  on the source domain's held-out examples; its reference is a logistic regression on source pixels;
- `d_probe`: `critic_network()`, a linear probe on the pooled activations of a GAN's critic with a
  label budget (Radford et al. 2016, sec. 5.1), beside the same probe on a randomly initialised
  critic; its reference is the same probe on raw pixels;
- `independence`: `recovered_sources(batch)`, the mean absolute correlation of recovered and true
  sources after the best one-to-one matching; its reference is FastICA on the mixtures.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import Batch, has_class_labels
from genrun.data.labelled import STREAM, choose_per_class
from genrun.metrics.base import EvalContext, in_chunks
from genrun.metrics.heldout import HeldOutMetric, linear_probe
from genrun.nets.pooling import pooled_activations, reinitialised
from genrun.ranges import PositiveInt, Seed

CANDIDATES = 10_000  # training examples a label budget is drawn from (the first ones of the split)


def predicted_classes(metric: HeldOutMetric, ctx: EvalContext, batch: Batch) -> Tensor:
    return metric.per_example(ctx, ctx.pipeline.class_logits, batch).argmax(1)


def labels_missing(ctx: EvalContext, split: str) -> str | None:
    if not has_class_labels(ctx.data.examples(64, split).get("y")):
        return f"it needs class labels in the {split} split"
    return None


class ClassError(HeldOutMetric):
    """`class_error`: the fraction of held-out examples the family's classifier gets wrong (the
    semi-supervised GAN's critic, through its EMA copy). Its reference: a logistic regression on the
    pixels of the same labelled subset (`dataset.labels_per_class`)."""

    name = "class_error"
    better = {"class_error": "lower"}
    floor_label = "logistic regression on the labelled subset's pixels"
    reads, lacks = "class_logits", "classifier of the data (model=ssgan, dann)"

    def __init__(self, n: PositiveInt = 10_000) -> None:
        super().__init__(n)
        self.labelled: dict[str, Any] = {}

    def missing(self, ctx: EvalContext) -> str | None:
        return super().missing(ctx) or labels_missing(ctx, ctx.held_out)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        batch = self.held_out(ctx)
        wrong = predicted_classes(self, ctx, batch) != batch["y"].cpu()
        self.labelled = labelled_subset_record(ctx)
        return {"class_error": float(wrong.double().mean())}

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        stream = ctx.data.streams.get(STREAM)
        if stream is None or not ctx.data.has(ctx.held_out):
            return None
        test = ctx.data.examples(self.n, ctx.held_out)
        accuracy = linear_probe(ctx.data.decode(stream.x.cpu()), stream.y.cpu(), test["x"], test["y"])
        return {"class_error": 1.0 - accuracy}

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "labelled": self.labelled}


def labelled_subset_record(ctx: EvalContext) -> dict[str, Any]:
    """How many labelled examples trained the classifier, and a fingerprint of which (sha256 of their indices)."""
    stream = ctx.data.streams.get(STREAM)
    if stream is None:
        return {}
    record: dict[str, Any] = {"examples": len(stream.x)}
    if stream.indices is not None:
        record["indices_sha256"] = hashlib.sha256(stream.indices.long().cpu().numpy().tobytes()).hexdigest()[:16]
    return record


class TargetAccuracy(HeldOutMetric):
    """`target_accuracy`: the family's classifier on held-out examples of the target domain (the
    data's test split), and `source_accuracy` on the source domain's held-out examples. Its reference:
    a logistic regression trained on source pixels (n examples), scored on the target."""

    name = "target_accuracy"
    better = {"target_accuracy": "higher", "source_accuracy": "higher"}
    floor_label = "logistic regression on source pixels"
    reads, lacks = "class_logits", "classifier of the data (model=dann)"

    def missing(self, ctx: EvalContext) -> str | None:
        if super().missing(ctx) is None and getattr(ctx.data, "target_domain", None) is None:
            return "the dataset has no target domain (dataset=mnist_textured, digits_mnist)"
        return super().missing(ctx) or labels_missing(ctx, ctx.held_out)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        batch = self.held_out(ctx)
        values = {"target_accuracy": float((predicted_classes(self, ctx, batch) == batch["y"].cpu()).double().mean())}
        source = ctx.data.source_examples(self.n)
        if source is not None:
            values["source_accuracy"] = float((predicted_classes(self, ctx, source) == source["y"]).double().mean())
        return values

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        if getattr(ctx.data, "target_domain", None) is None or not ctx.data.has(ctx.held_out):
            return None
        train, test = ctx.data.examples(self.n, "train"), ctx.data.examples(self.n, ctx.held_out)
        return {"target_accuracy": linear_probe(train["x"], train["y"], test["x"], test["y"])}


class DiscriminatorProbe(HeldOutMetric):
    """`d_probe_accuracy`: a linear probe (logistic regression) on a trained critic's activations,
    every layer max-pooled to a 4 x 4 grid (Radford et al. 2016, sec. 5.1), trained on a label budget
    of `labels_per_class` training examples per class (chosen with `seed` among the first 10,000) and
    scored on n held-out ones; `d_probe_random_critic`: the same probe on the same critic randomly
    initialised (PyTorch's default initialisation, seed `seed`). Its reference: the probe on raw pixels."""

    name = "d_probe"
    better = {"d_probe_accuracy": "higher", "d_probe_random_critic": "higher"}
    floor_label = "raw pixels"
    reads, lacks = "critic_network", "critic of single examples (a GAN family: gan, dcgan, cgan, infogan, bigan, ssgan)"

    def __init__(self, n: PositiveInt = 2000, labels_per_class: PositiveInt = 100, seed: Seed = 0,
                 grid: PositiveInt = 4) -> None:
        super().__init__(n)
        self.labels_per_class, self.seed, self.grid = labels_per_class, seed, grid
        self.budget, self.dim = 0, 0

    def missing(self, ctx: EvalContext) -> str | None:
        reason = super().missing(ctx) or labels_missing(ctx, "train") or labels_missing(ctx, ctx.held_out)
        if reason is None and ctx.pipeline.critic_network() is None:
            return f"{type(ctx.pipeline).__name__}'s critic judges packed samples (model.pack > 1), not single examples"
        return reason

    def budget_examples(self, ctx: EvalContext) -> Batch:
        """The labelled training examples the probe may use: labels_per_class of each class."""
        pool = ctx.data.examples(CANDIDATES, "train")
        chosen = choose_per_class(pool["y"], self.labels_per_class, self.seed)
        self.budget = len(chosen)
        return {"x": pool["x"][chosen], "y": pool["y"][chosen]}

    def probe(self, ctx: EvalContext, critic: torch.nn.Module, train: Batch, test: Batch) -> float:
        critic.eval()
        device = ctx.pipeline.device
        features = [in_chunks(lambda x: pooled_activations(critic, x.to(device), self.grid), b["x"])
                    for b in (train, test)]
        self.dim = features[0].shape[1]
        return linear_probe(features[0], train["y"], features[1], test["y"])

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        train, test = self.budget_examples(ctx), self.held_out(ctx)
        with ctx.pipeline.evaluating():
            critic = ctx.pipeline.critic_network()
            trained = self.probe(ctx, critic, train, test)
            random = self.probe(ctx, reinitialised(critic, self.seed), train, test)
        return {"d_probe_accuracy": trained, "d_probe_random_critic": random}

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        if labels_missing(ctx, "train") or not ctx.data.has(ctx.held_out) or labels_missing(ctx, ctx.held_out):
            return None
        train, test = self.budget_examples(ctx), ctx.data.examples(self.n, ctx.held_out)
        return {"d_probe_accuracy": linear_probe(train["x"], train["y"], test["x"], test["y"])}

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "labels_per_class": self.labels_per_class, "labelled_examples": self.budget,
                "label_seed": self.seed, "pool_grid": self.grid, "feature_dim": self.dim}


def matched_correlation(recovered: Tensor, sources: Tensor) -> float:
    """Mean over the true sources of |corr(source, recovered output)| under the best one-to-one
    matching of outputs to sources (Hungarian algorithm); a source left without an output counts 0."""
    from scipy.optimize import linear_sum_assignment

    a = recovered.double().cpu()
    b = sources.double().cpu()
    a = (a - a.mean(0)) / a.std(0).clamp_min(1e-12)
    b = (b - b.mean(0)) / b.std(0).clamp_min(1e-12)
    corr = (b.T @ a / (len(a) - 1)).abs()  # [sources, outputs]
    rows, cols = linear_sum_assignment(corr.numpy(), maximize=True)
    return float(corr[rows, cols].sum()) / sources.shape[1]


def fast_ica(train_x: Tensor, test_x: Tensor, components: int, seed: int = 0) -> Tensor:
    """scikit-learn's FastICA (Hyvarinen 1999) fitted on training mixtures, applied to held-out ones."""
    from sklearn.decomposition import FastICA
    from threadpoolctl import threadpool_limits

    ica = FastICA(n_components=components, whiten="unit-variance", random_state=seed, max_iter=1000)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        ica.fit(train_x.flatten(1).double().cpu().numpy())
        return torch.from_numpy(ica.transform(test_x.flatten(1).double().cpu().numpy()))


class SourceRecovery(HeldOutMetric):
    """`source_correlation`: how well a model recovers independent sources from their mixtures (Brakel
    & Bengio 2017): the mean absolute correlation between its outputs on held-out mixtures and the
    true sources (the data's labels), after the best matching; 1 is perfect up to order, sign and
    scale. Its reference: FastICA fitted on n training mixtures."""

    name = "independence"
    better = {"source_correlation": "higher"}
    floor_label = "FastICA on the mixtures"
    reads, lacks = "recovered_sources", "recovered sources (model=independence)"

    def missing(self, ctx: EvalContext) -> str | None:
        reason = super().missing(ctx)
        if reason is None:
            y = ctx.data.examples(2, ctx.held_out).get("y")
            if y is None or y.dim() != 2 or not y.is_floating_point():
                return f"the {ctx.held_out} split carries no true sources (dataset=ica)"
        return reason

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        batch = self.held_out(ctx)
        recovered = self.per_example(ctx, ctx.pipeline.recovered_sources, batch)
        return {"source_correlation": matched_correlation(recovered, batch["y"])}

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        if not ctx.data.has(ctx.held_out):
            return None
        train, test = ctx.data.examples(self.n, "train"), ctx.data.examples(self.n, ctx.held_out)
        if test.get("y") is None or not test["y"].is_floating_point():
            return None
        recovered = fast_ica(train["x"], test["x"], test["y"].shape[1])
        return {"source_correlation": matched_correlation(recovered, test["y"])}
