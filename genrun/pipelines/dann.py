"""Domain-adversarial neural network (Ganin & Lempitsky 2015): a feature extractor shared by a label
classifier, trained on the labelled source domain, and a domain classifier that tells source
features from target features; the features are trained to leave it guessing.

Every batch holds labelled source examples (`x`, `y`) and as many unlabelled target examples
(`x_target`, the data's side stream: dataset=mnist_textured, digits_mnist); both pass through the
feature extractor together. The invariance (`model.invariance`, genrun.losses.invariance) decides
the step:
- `reversal`: one phase, every network at once: label cross-entropy on the source + the domain
  cross-entropy, whose gradient reaches the features through a gradient-reversal layer of scale
  lambda_p (genrun.nets.domain.GradientReversal), so the features maximise what the domain
  classifier minimises;
- `marginal` (Feutry et al. 2018) and `none` (source only): the domain classifier's phase on the
  features (no gradient to them), then the features and the label classifier minimise the label
  cross-entropy + lambda_p x the invariance's term, the domain classifier frozen.
lambda_p follows Ganin & Lempitsky's schedule over the run's length (`loss.gamma`, `loss.weight`);
the steps done are a buffer, so a resumed run continues the schedule where it was. Optimizer
roles: `encoder` (feature extractor and label classifier), `discriminator` (domain classifier).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.domain import DomainAdversarial
from genrun.nets.domain import StepCounter, classifier_head, reverse_gradient
from genrun.pipelines.base import Pipeline
from genrun.ranges import NonNegativeInt, PositiveInt


class DANNPipeline(Pipeline):
    generative = False  # a classifier: no samples of the data to measure
    loss_kinds = ("domain",)
    primary_metric = "loss/label"
    default_metrics = ("target_accuracy",)

    def __init__(
        self,
        features: Callable[..., nn.Module],
        invariance_objective: Any,
        loss: DomainAdversarial,
        optimizers: Mapping[str, OptimizerFactory],
        num_classes: PositiveInt,
        schedule_steps: PositiveInt,
        device: torch.device | str = "cpu",
        target_domain: str | None = None,
        feature_dim: PositiveInt = 128,
        hidden: PositiveInt = 100,
        domain_depth: NonNegativeInt = 2,
    ) -> None:
        if not target_domain:
            raise GenrunError("model=dann needs a dataset with a target domain (dataset=mnist_textured, or "
                              "digits_mnist); this dataset has none")
        super().__init__(loss, optimizers, device)
        self.invariance, self.target_domain = invariance_objective, target_domain
        self.features = self.add_net("features", features(out_dim=feature_dim))
        self.classifier = self.add_net("classifier", classifier_head(feature_dim, num_classes, hidden, 1))
        self.domain_classifier = self.add_net("domain_classifier", classifier_head(feature_dim, 1, hidden, domain_depth))
        self.clock = self.add_net("schedule", StepCounter(schedule_steps))
        self.add_optimizer("encoder", self.features, self.classifier)
        self.add_optimizer("discriminator", self.domain_classifier)
        if self.invariance.joint:
            self.phases = [Phase("dann", ("encoder", "discriminator"), self.joint_objective, after=self.clock.tick)]
        else:
            self.phases = [Phase("domain", ("discriminator",), self.domain_objective),
                           Phase("task", ("encoder",), self.task_objective, fresh_batch=False, after=self.clock.tick)]

    # -- training ---------------------------------------------------------------------------
    def both_domains(self, batch: Batch) -> tuple[Tensor, Tensor, int]:
        """Features of the source and target examples in one pass; the domain of each (target = 1)."""
        if "x_target" not in batch:
            raise GenrunError("model=dann needs a target domain in every batch (the side stream `target` of "
                              "dataset=mnist_textured or digits_mnist)")
        n = len(batch["x"])
        f = self.features(torch.cat([batch["x"], batch["x_target"]]))
        domains = torch.cat([torch.zeros(n, device=f.device), torch.ones(len(batch["x_target"]), device=f.device)])
        return f, domains, n

    def joint_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Label loss + domain loss, the features reached through the gradient reversal of scale lambda_p."""
        f, domains, n = self.both_domains(batch)
        lam = self.loss.domain_weight(self.clock.progress())
        label = self.loss.label_loss(self.classifier(f[:n]), batch["y"])
        logits = self.domain_classifier(reverse_gradient(f, lam))
        domain = self.loss.domain_loss(logits, domains)
        return label + domain, {**self.scalars(label, domain, logits, domains), "dann/lambda": lam}

    def domain_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The domain classifier learns to tell source from target features (no gradient to them)."""
        with torch.no_grad():
            f, domains, _ = self.both_domains(batch)
        logits = self.domain_classifier(f)
        domain = self.loss.domain_loss(logits, domains)
        return domain, {"loss/domain": domain, "dann/domain_accuracy": accuracy(logits, domains)}

    def task_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Features and label classifier: label loss + lambda_p x the invariance's term (domain classifier frozen)."""
        f, domains, n = self.both_domains(batch)
        lam = self.loss.domain_weight(self.clock.progress())
        label = self.loss.label_loss(self.classifier(f[:n]), batch["y"])
        term = self.invariance.encoder_term(self.domain_classifier(f), domains)
        return label + lam * term, {"loss/label": label, "dann/invariance": term, "dann/lambda": lam}

    @staticmethod
    def scalars(label: Tensor, domain: Tensor, logits: Tensor, domains: Tensor) -> dict[str, Tensor]:
        return {"loss/label": label, "loss/domain": domain, "dann/domain_accuracy": accuracy(logits, domains)}

    # -- no samples: nothing to draw, no pictures -------------------------------------------
    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {}

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        return {}

    # -- what metrics read (genrun.metrics.representation) ------------------------------------
    def class_logits(self, batch: Batch) -> Tensor:
        """The label classifier on the features of any examples (source or target)."""
        with self.evaluating():
            return self.classifier(self.features(batch["x"]))


def accuracy(logits: Tensor, domains: Tensor) -> Tensor:
    """The domain classifier's accuracy on the batch (0.5: it cannot tell the domains apart)."""
    return ((logits.flatten() > 0).float() == domains).float().mean()
