"""GAN family (Goodfellow et al. 2014): any adversarial objective, MLP or DCGAN networks.

A step is `n_critic` discriminator updates on fresh batches, then one generator update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.losses.adversarial import AdversarialLoss
from genrun.pipelines.base import Noise, OptimizerFactory, Pipeline, frozen, update


class GeneratorRegularizer(Protocol):
    """An extra generator objective with its own networks (e.g. GAN+MINE's statistics network).

    `attach` registers its networks and optimizers with the pipeline (so they are saved and
    restored); `generator_terms` returns weighted terms the generator minimises, by the name
    they are logged under, and may update its own networks first.
    """

    def attach(self, pipeline: Pipeline) -> None: ...

    def generator_terms(self, z: Tensor, fake: Tensor) -> dict[str, Tensor]: ...


class GANPipeline(Pipeline):
    loss_kinds = ("adversarial",)
    primary_metric = "loss/g"

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss,
        optimizers: Mapping[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        z_dim: int = 64,
        n_critic: int = 1,
        regularizers: Mapping[str, GeneratorRegularizer] | None = None,
    ) -> None:
        super().__init__(loss, optimizers, device)
        self.z_dim, self.n_critic = z_dim, n_critic
        self.generator = self.add_net("generator", generator)
        self.discriminator = self.add_net("discriminator", discriminator)
        self.opt_g = self.add_optimizer("generator", self.generator)
        self.opt_d = self.add_optimizer("discriminator", self.discriminator)
        self.regularizers = dict(regularizers or {})
        for regularizer in self.regularizers.values():
            regularizer.attach(self)

    def step(self, next_batch: Callable[[], Batch]) -> dict[str, Tensor]:
        for _ in range(self.n_critic):
            real = next_batch()["x"]
            scalars = self.discriminator_phase(real)
        scalars.update(self.generator_phase(real.shape[0]))
        return scalars

    def discriminator_phase(self, real: Tensor) -> dict[str, Tensor]:
        """Dmain (+ Dreg): the critic learns to tell `real` from fresh generated samples."""
        with torch.no_grad():
            fake = self.generator(self.gaussian(real.shape[0], self.z_dim))
        loss_d = self.loss.d_loss(self.discriminator(real), self.discriminator(fake))
        regs = self.loss.regularizers(self.discriminator, real, fake)
        update(sum(regs.values(), start=loss_d), self.opt_d)
        self.loss.after_critic_step(self.discriminator)
        return {"loss/d": loss_d.detach(), **{k: v.detach() for k, v in regs.items()}}

    def generator_phase(self, n: int) -> dict[str, Tensor]:
        """Gmain: the generator moves its samples to where the (frozen) critic scores them real."""
        z = self.gaussian(n, self.z_dim)
        with frozen(self.discriminator):
            fake = self.generator(z)
            loss_g = self.loss.g_loss(self.discriminator(fake))
            terms = {k: v for r in self.regularizers.values() for k, v in r.generator_terms(z, fake).items()}
            update(sum(terms.values(), start=loss_g), self.opt_g)
        return {"loss/g": loss_g.detach(), **{k: v.detach() for k, v in terms.items()}}

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Noise:
        return {"z": self.gaussian(n, self.z_dim, generator=generator)}

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.generator(noise["z"])
