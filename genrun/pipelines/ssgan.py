"""Semi-supervised GAN (Salimans et al. 2016, sec. 5): the critic is a classifier of K classes whose
logits also say real vs generated, D(x) = Z / (Z + 1) with Z = sum_k exp l_k (genrun.losses.semi_supervised).

Every step draws an unlabelled batch (the whole training split, labels hidden: the labelled
examples are in it too, as in the authors' code) and a labelled batch of the same size from the
labelled subset (`dataset.labels_per_class` per class, chosen with `dataset.label_seed`:
genrun.data.labelled), then two phases:
- D: the critic minimises the labelled cross-entropy + `loss.unlabelled_weight` x the unlabelled
  and generated terms (real batch vs G(z) without gradients through G);
- G: the generator matches the critic's mean last-hidden-layer features of the same unlabelled
  batch (feature matching), then its EMA (when `ema` > 0).
The critic keeps an EMA copy of its weights (`ema`, 0.999 by default, as the authors' CIFAR code's
parameter averaging), which classifies at test time: `class_logits` (metrics=[class_error]).
Optimizer roles: `generator`, `discriminator`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.semi_supervised import SemiSupervised
from genrun.pipelines.base import Pipeline
from genrun.ranges import Decay, PositiveInt


class SemiSupervisedGANPipeline(Pipeline):
    loss_kinds = ("semi_supervised",)
    primary_metric = "ssgan/labelled"
    default_metrics = ("class_error",)

    def __init__(
        self,
        generator: nn.Module,
        discriminator: Callable[..., nn.Module],
        loss: SemiSupervised,
        optimizers: Mapping[str, OptimizerFactory],
        num_classes: PositiveInt,
        device: torch.device | str = "cpu",
        z_dim: PositiveInt = 100,
        ema: Decay = 0.999,
    ) -> None:
        if num_classes < 2:
            raise GenrunError(f"model=ssgan needs labelled data of at least 2 classes, but dataset.num_classes="
                              f"{num_classes}")
        super().__init__(loss, optimizers, device, ema)
        self.z_dim, self.num_classes = z_dim, num_classes
        self.generator = self.add_net("generator", generator)
        self.discriminator = self.add_net("discriminator", discriminator(num_classes=num_classes))
        self.add_optimizer("generator", self.generator)
        self.add_optimizer("discriminator", self.discriminator)
        self.add_ema("generator")
        self.add_ema("discriminator")
        # both EMA copies move once per step, after the step's last phase
        self.phases = [Phase("D", ("discriminator",), self.discriminator_objective),
                       Phase("G", ("generator",), self.generator_objective, fresh_batch=False,
                             after=self.update_ema)]

    def labelled(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The batch's labelled examples and their labels (the side stream of genrun.data.labelled)."""
        if "x_labelled" not in batch:
            raise GenrunError("model=ssgan needs a labelled subset: set dataset.labels_per_class (the model's "
                              "config does; a dataset without labels cannot have one)")
        return batch["x_labelled"], batch["y_labelled"]

    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Labelled cross-entropy + weighted unlabelled/generated terms, one pass per kind of input."""
        x_lab, y_lab = self.labelled(batch)
        real = batch["x"]
        with torch.no_grad():
            fake = self.generator(self.gaussian(real.shape[0], self.z_dim))
        terms = self.loss.critic_terms(self.discriminator(x_lab), y_lab, self.discriminator(real),
                                       self.discriminator(fake))
        loss = self.loss.critic_loss(terms)
        return loss, {"loss/d": loss, **terms}

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Feature matching against the unlabelled batch (the critic frozen in this phase)."""
        real = batch["x"]
        with torch.no_grad():
            target = self.discriminator.features(real)
        fake = self.generator(self.gaussian(real.shape[0], self.z_dim))
        loss_g = self.loss.generator_loss(target, self.discriminator.features(fake))
        return loss_g, {"loss/g": loss_g}

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {"z": self.gaussian(n, self.z_dim, rng=rng)}

    def calibration_inputs(self, name: str, n: int, rng: torch.Generator) -> tuple[Tensor, ...]:
        if name != "generator":
            raise GenrunError(f"model=ssgan: the EMA of '{name}' has BatchNorm, which only the generator may have")
        return (self.gaussian(n, self.z_dim, rng=rng),)

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.sampling_net("generator")(noise["z"])

    # -- what metrics read (genrun.metrics.representation) ------------------------------------
    def class_logits(self, batch: Batch) -> Tensor:
        """The critic's K class logits (its EMA copy when the run keeps one, noise layers off)."""
        with self.evaluating():
            return self.sampling_net("discriminator")(batch["x"])

    def critic_network(self) -> nn.Module:
        """The critic whose pooled activations a probe reads (metrics=[d_probe])."""
        return self.sampling_net("discriminator")
