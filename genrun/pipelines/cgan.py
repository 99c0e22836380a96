"""Conditional GAN (Mirza & Osindero 2014): G(z, y) and D(x, y), any adversarial objective.

The label is embedded and joins the noise in G; in D its embedding projects the critic's
features (Miyato & Koyama 2018), see nets/conditional.py. `generator` and `discriminator`
in the config are the plain networks (`_partial_`) the family wraps, conv or MLP by
`model.arch`. A step is the critic's phase (`n_critic` updates on real (x, y) against
G(z, y) with the same labels), then the generator's on uniformly drawn labels.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.images import labelled_points, square_indices
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.nets.conditional import LabelledGenerator, NetFactory, ProjectionCritic
from genrun.pipelines.base import Critic, Pipeline, critic_objective, critic_phases
from genrun.ranges import NonNegativeInt, PositiveInt


def require_classes(num_classes: NonNegativeInt, model: str) -> None:
    """A label-conditioned family needs at least two classes in the data."""
    if num_classes < 2:
        raise GenrunError(
            f"model={model} needs labelled data but dataset.num_classes={num_classes}; use a dataset "
            f"with classes (digits, mnist, fashion_mnist, cifar10, ring8, grid25) or set "
            f"dataset.num_classes for an image_folder with one subfolder per class"
        )


def labels_of(batch: Batch, model: str) -> Tensor:
    """The batch's class labels; a clear error when the data has none."""
    if "y" not in batch:
        raise GenrunError(f"model={model} needs labelled data, but this dataset's batches carry no labels")
    return batch["y"]


def class_rows(z: Tensor, num_classes: NonNegativeInt) -> tuple[Tensor, Tensor]:
    """Inputs of a num_classes x num_classes grid: row i is class i, column j noise vector j."""
    row, col = square_indices(num_classes, z.device)
    return z[col % len(z)], row


class CGANPipeline(Pipeline):
    loss_kinds = ("adversarial",)
    primary_metric = "loss/g"

    def __init__(
        self,
        generator: NetFactory,
        discriminator: NetFactory,
        loss: AdversarialLoss,
        optimizers: Mapping[str, OptimizerFactory],
        num_classes: NonNegativeInt,
        device: torch.device | str = "cpu",
        z_dim: PositiveInt = 64,
        embed_dim: PositiveInt = 16,
        features: PositiveInt = 128,
        n_critic: PositiveInt = 1,
    ) -> None:
        require_classes(num_classes, "cgan")
        super().__init__(loss, optimizers, device)
        self.z_dim, self.num_classes = z_dim, num_classes
        self.generator = self.add_net("generator", LabelledGenerator(generator, z_dim, num_classes, embed_dim))
        self.discriminator = self.add_net("discriminator", ProjectionCritic(discriminator, num_classes, features))
        self.add_optimizer("generator", self.generator)
        self.add_optimizer("discriminator", self.discriminator)
        self.phases = [*critic_phases(self.loss, self.discriminator, self.discriminator_objective, n_critic,
                                      self.real_critic),
                       Phase("G", ("generator",), self.generator_objective, fresh_batch=False)]

    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Dmain (+ Dreg): the critic tells real (x, y) from (G(z, y), y), labels shared."""
        critic, real = self.real_critic(batch)
        with torch.no_grad():
            fake = self.generator(self.gaussian(real.shape[0], self.z_dim), batch["y"])
        return critic_objective(self.loss, critic, real, fake)

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        """The critic of the batch's labels, and the real images."""
        y = labels_of(batch, "cgan")
        return (lambda x: self.discriminator(x, y)), batch["x"]

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Gmain: G(z, y) for uniform labels y moves to where the critic scores (x, y) real."""
        n = batch["x"].shape[0]
        z = self.gaussian(n, self.z_dim)
        y = torch.randint(self.num_classes, (n,), device=self.device)
        loss_g = self.loss.g_loss(self.discriminator(self.generator(z, y), y))
        return loss_g, {"loss/g": loss_g}

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        classes = torch.randint(self.num_classes, (n,), device=self.device, generator=rng)
        return {"z": self.gaussian(n, self.z_dim, rng=rng), "class": classes}

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.generator(noise["z"], noise["class"])

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Samples, and one row per class over the same noise (2D data: samples coloured by class)."""
        samples = self.generate(fixed)
        if samples.dim() == 2:
            return {"samples": samples, "classes": labelled_points(samples, fixed["class"])}
        z, y = class_rows(fixed["z"], self.num_classes)
        return {"samples": samples, "classes": self.generate({"z": z, "class": y})}

    def critic_network(self) -> nn.Module:
        """The critic's body (x alone, before the label's projection): what a probe reads (metrics=[d_probe])."""
        return self.discriminator.body
