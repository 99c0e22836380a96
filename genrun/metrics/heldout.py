"""Metrics of a trained model on held-out data, read through one method of its family.

Each reads at most `n` examples of the held-out split the evaluator names (validation while
choosing checkpoints during training when the data has one, else test) through one method a
family may have, and is left out, with the reason, for a family without it:
- `recon` (recon_mse): `reconstruct(batch)`, autoencoders' x -> code -> x;
- `probe` (probe_accuracy): `codes(batch)`, a linear probe of a model's representation, whose
  floor is the same probe on the raw pixels;
- `code_accuracy`: `categorical_code(batch)`, InfoGAN's unsupervised classes against the labels;
- `code_mi`: the same code's mutual information with the examples, without labels;
- `mi` (mi_estimate): `held_out_estimate(pairs)`, MINE's bound, whose floor is the true MI.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor

from genrun.data.bundle import Batch, has_class_labels
from genrun.metrics.base import EvalContext, Metric, in_chunks
from genrun.ranges import PositiveInt


class HeldOutMetric(Metric):
    """A metric of the model on at most `n` examples of the held-out split, read through the
    family's method `reads` (a family without it is left out, with `lacks` as the reason)."""

    needs = ("model",)
    reads: ClassVar[str] = ""
    lacks: ClassVar[str] = ""

    def __init__(self, n: PositiveInt = 2000) -> None:
        self.n = n
        self.split, self.examples = "", 0

    def missing(self, ctx: EvalContext) -> str | None:
        if ctx.pipeline is None:
            return "it needs the model"
        if not callable(getattr(ctx.pipeline, self.reads, None)):
            return f"{type(ctx.pipeline).__name__} has no {self.lacks}"
        if not ctx.data.has(ctx.held_out):
            return f"the dataset has no {ctx.held_out} split"
        return None

    def held_out(self, ctx: EvalContext, split: str | None = None) -> Batch:
        """At most n examples of the held-out split (or of `split`), on the CPU; recorded for the protocol."""
        batch = ctx.data.examples(self.n, split or ctx.held_out)
        if split is None:
            self.split, self.examples = ctx.held_out, len(batch["x"])
        return batch

    def per_example(self, ctx: EvalContext, fn: Any, batch: Batch) -> Tensor:
        """fn over the batch in chunks, each moved to the model's device first."""
        device = ctx.pipeline.device
        return in_chunks(lambda part: fn({k: v.to(device) for k, v in part.items()}), batch)

    def protocol(self) -> dict[str, Any]:
        return {"split": self.split, "examples": self.examples}


class Reconstruction(HeldOutMetric):
    """`recon_mse`: mean squared error per value, in data space, of the model's reconstruction of
    held-out examples (x -> code -> x)."""

    name = "recon"
    better = {"recon_mse": "lower"}
    reads, lacks = "reconstruct", "reconstruction (an encoder and a decoder)"

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        batch = self.held_out(ctx)
        squared = self.per_example(
            ctx, lambda b: (ctx.pipeline.reconstruct(b) - b["x"]).pow(2).flatten(1).mean(1), batch)
        return {"recon_mse": float(squared.mean())}


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor) -> float:
    """Held-out accuracy of a multinomial logistic regression on standardised features (scikit-learn)."""
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


class LinearProbe(HeldOutMetric):
    """`probe_accuracy`: a linear probe (logistic regression) trained on the codes of n training
    examples and scored on n held-out ones: how linearly the labels can be read from the model's
    representation. Its floor is the same probe on the raw pixels."""

    name = "probe"
    better = {"probe_accuracy": "higher"}
    floor_label = "raw pixels"
    reads, lacks = "codes", "codes of data to probe (an encoder, or InfoGAN's Q)"

    def missing(self, ctx: EvalContext) -> str | None:
        reason = super().missing(ctx)
        if reason is None and not self.labelled(ctx):
            return "it needs class labels in the training and held-out splits"
        return reason

    def labelled(self, ctx: EvalContext) -> bool:
        return all(has_class_labels(ctx.data.examples(64, s).get("y")) for s in ("train", ctx.held_out))

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        train, test = self.held_out(ctx, "train"), self.held_out(ctx)
        codes = [self.per_example(ctx, ctx.pipeline.codes, batch) for batch in (train, test)]
        return {"probe_accuracy": linear_probe(codes[0], train["y"], codes[1], test["y"])}

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        if not (ctx.data.has(ctx.held_out) and self.labelled(ctx)):
            return None
        train, test = ctx.data.examples(self.n, "train"), ctx.data.examples(self.n, ctx.held_out)
        return {"probe_accuracy": linear_probe(train["x"], train["y"], test["x"], test["y"])}


def code_confusion(codes: Tensor, labels: Tensor) -> Tensor:
    """Counts of (code value, class) pairs: row c, column y, square over the larger range."""
    codes, labels = codes.long().cpu(), labels.long().cpu()
    k = int(max(codes.max(), labels.max())) + 1
    return torch.bincount(codes * k + labels, minlength=k * k).view(k, k)


def best_match(confusion: Tensor) -> dict[int, int]:
    """The one-to-one map code value -> class maximising the matched counts (Hungarian
    algorithm, via scipy's linear_sum_assignment)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(confusion.numpy(), maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def accuracy_under(confusion: Tensor, match: dict[int, int]) -> float:
    """The fraction of the confusion's examples whose code `match` maps to their class; codes
    left without a class count as errors."""
    return sum(int(confusion[c, y]) for c, y in match.items()) / int(confusion.sum())


def matched_accuracy(codes: Tensor, labels: Tensor) -> float:
    """Accuracy of `codes` as labels under the best one-to-one map of code values to classes."""
    confusion = code_confusion(codes, labels)
    return accuracy_under(confusion, best_match(confusion))


def code_information(logits: Tensor) -> Tensor:
    """I(x; c) = H(E_x q(c|x)) - E_x H(q(c|x)) in nats, q(c|x) the softmax of each row of `logits`
    (one row per example): high when every example gets a confident value and all values are used
    equally often (at most log k); the label-free clustering criterion of Bridle, Heading & MacKay
    1992, which CatGAN's critic maximises on real data (Springenberg 2016)."""
    log_q = torch.log_softmax(logits, 1)
    q = log_q.exp()
    marginal = q.mean(0)
    return -torch.special.xlogy(marginal, marginal).sum() + (q * log_q).sum(1).mean()


class CodeAccuracy(HeldOutMetric):
    """`code_accuracy`: InfoGAN's categorical code of held-out data as class labels, under the
    best one-to-one match of code values to classes (Chen et al. 2016 report 95% on MNIST).
    The protocol keeps the confusion counts and the match, which show a class split over two
    code values or two classes sharing one."""

    name = "code_accuracy"
    better = {"code_accuracy": "higher"}
    reads, lacks = "categorical_code", "categorical code (InfoGAN's Q)"

    def __init__(self, n: PositiveInt = 2000) -> None:
        super().__init__(n)
        self.confusion: list[list[int]] = []
        self.match: dict[str, int] = {}

    def missing(self, ctx: EvalContext) -> str | None:
        reason = super().missing(ctx)
        if reason is None and not has_class_labels(ctx.data.examples(64, ctx.held_out).get("y")):
            return f"it needs class labels in the {ctx.held_out} split"
        return reason

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        batch = self.held_out(ctx)
        codes = self.per_example(ctx, ctx.pipeline.categorical_code, batch).argmax(1)
        confusion = code_confusion(codes, batch["y"])
        match = best_match(confusion)
        self.confusion, self.match = confusion.tolist(), {str(c): y for c, y in match.items()}
        return {"code_accuracy": accuracy_under(confusion, match)}

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "confusion": "rows: code values, columns: classes",
                "counts": self.confusion, "match": self.match}


class CodeInformation(HeldOutMetric):
    """`code_mi`: mutual information between held-out examples and InfoGAN's categorical code as
    Q reads it (`code_information`), in nats; needs no labels. Its ceiling log k is reached by a
    code that is confident on every example and uses each value equally often."""

    name = "code_mi"
    better = {"code_mi": "higher"}
    reads, lacks = "categorical_code", "categorical code (InfoGAN's Q)"

    def __init__(self, n: PositiveInt = 2000) -> None:
        super().__init__(n)
        self.ceiling = 0.0

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        batch = self.held_out(ctx)
        logits = self.per_example(ctx, ctx.pipeline.categorical_code, batch)
        self.ceiling = math.log(logits.shape[1])
        return {"code_mi": float(code_information(logits.double()))}

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "ceiling_nats": self.ceiling}


class MutualInformation(HeldOutMetric):
    """`mi_estimate`: MINE's bound with its averaged statistics network on held-out pairs, in nats
    (Belghazi et al. 2018); its floor is the true mutual information when the data knows it."""

    name = "mi"
    better = {"mi_estimate": "higher"}
    floor_label = "true MI"
    reads, lacks = "held_out_estimate", "mutual-information estimate (model=mine)"

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return {"mi_estimate": ctx.pipeline.held_out_estimate(self.held_out(ctx)["x"])}

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        truth = getattr(ctx.data, "mutual_information", None)
        return {"mi_estimate": float(truth)} if truth is not None else None
