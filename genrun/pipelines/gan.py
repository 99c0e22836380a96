"""GAN family (Goodfellow et al. 2014): any adversarial objective, MLP or DCGAN networks.

A step is the critic's phase (`n_critic` updates on fresh batches; with a lazy R1, its own phase
every k-th step), the generator's (then the generator's EMA, when `ema` > 0), then any generator
regulariser's phases (GAN+MINE's statistics network). Tricks that compose with any objective: `pack`
(PacGAN), `feature_matching` (the generator's objective), an EMA generator for sampling;
the networks bring spectral norm and minibatch discrimination (genrun.nets.layers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.pipelines.base import Critic, Pipeline, critic_objective, critic_phases
from genrun.ranges import Decay, PositiveInt


class GeneratorRegularizer(Protocol):
    """An extra generator objective with its own networks (e.g. GAN+MINE's statistics network).

    `attach` registers its networks and optimizers with the pipeline (so they are saved and
    restored); `generator_terms` returns weighted terms the generator minimises, by the name
    they are logged under; `phases` are the updates of its own networks, run after the
    generator's phase.
    """

    def attach(self, pipeline: Pipeline) -> None: ...

    def generator_terms(self, z: Tensor, fake: Tensor) -> dict[str, Tensor]: ...

    def phases(self) -> list[Phase]: ...


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Salimans et al. 2016, sec. 3.1: ||E_x f(x) - E_z f(G(z))||_2^2 over D's features f."""
    return (real_features.mean(0) - fake_features.mean(0)).pow(2).sum()


def pack_samples(x: Tensor, m: int) -> Tensor:
    """PacGAN (Lin et al. 2018): [B, C, ...] -> [B/m, m*C, ...], m consecutive samples per row."""
    if m == 1:
        return x
    if x.shape[0] % m:
        raise GenrunError(f"trainer.batch_size={x.shape[0]} is not divisible by model.pack={m}")
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])


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
        z_dim: PositiveInt = 64,
        n_critic: PositiveInt = 1,
        regularizers: Mapping[str, GeneratorRegularizer] | None = None,
        ema: Decay = 0.0,
        pack: PositiveInt = 1,
        feature_matching: bool = False,
    ) -> None:
        super().__init__(loss, optimizers, device, ema)
        check_tricks(discriminator, pack, feature_matching)
        self.z_dim = z_dim
        self.pack, self.feature_matching = pack, feature_matching
        self.generator = self.add_net("generator", generator)
        self.discriminator = self.add_net("discriminator", discriminator)
        self.add_optimizer("generator", self.generator)
        self.add_optimizer("discriminator", self.discriminator)
        self.add_ema("generator")
        self.regularizers = dict(regularizers or {})
        for regularizer in self.regularizers.values():
            regularizer.attach(self)
        self.phases = [
            *critic_phases(self.loss, self.discriminator, self.discriminator_objective, n_critic, self.real_critic),
            Phase("G", ("generator",), self.generator_objective, fresh_batch=False, after=self.update_ema),
            *(phase for r in self.regularizers.values() for phase in r.phases()),
        ]

    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Dmain (+ Dreg): the critic learns to tell the real batch from fresh generated samples."""
        real = batch["x"]
        with torch.no_grad():
            fake = self.generator(self.gaussian(real.shape[0], self.z_dim))
        return critic_objective(self.loss, self.discriminator, pack_samples(real, self.pack),
                                pack_samples(fake, self.pack))

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        """The critic and its real inputs (packed), for a lazy regulariser's phase."""
        return self.discriminator, pack_samples(batch["x"], self.pack)

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Gmain: the generator moves its samples to where the critic scores them real (or, with
        feature matching, to where the critic's features of the real batch are on average)."""
        real = batch["x"]
        z = self.gaussian(real.shape[0], self.z_dim)
        fake = self.generator(z)
        loss_g = self.generator_loss(pack_samples(fake, self.pack), real)
        terms = {k: v for r in self.regularizers.values() for k, v in r.generator_terms(z, fake).items()}
        return sum(terms.values(), start=loss_g), {"loss/g": loss_g, **terms}

    def generator_loss(self, packed_fake: Tensor, real: Tensor) -> Tensor:
        """The adversarial generator loss, or feature matching against a real batch."""
        if not self.feature_matching:
            return self.loss.g_loss(self.discriminator(packed_fake))
        with torch.no_grad():
            target = self.discriminator.features(pack_samples(real, self.pack))
        return feature_matching_loss(target, self.discriminator.features(packed_fake))

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {"z": self.gaussian(n, self.z_dim, rng=rng)}

    def calibration_inputs(self, name: str, n: int, rng: torch.Generator) -> tuple[Tensor, ...]:
        return (self.gaussian(n, self.z_dim, rng=rng),)

    def generate(self, noise: Noise) -> Tensor:
        """Samples from the generator's EMA copy when the run keeps one."""
        with self.evaluating():
            return self.sampling_net("generator")(noise["z"])

    def critic_network(self) -> nn.Module | None:
        """The critic whose pooled activations a probe reads (metrics=[d_probe]); None when it judges
        packed samples (PacGAN), not single examples."""
        return self.discriminator if self.pack == 1 else None


def check_tricks(discriminator: nn.Module, pack: PositiveInt, feature_matching: bool) -> None:
    """The discriminator must be built for the pipeline's packing and expose features when needed."""
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise GenrunError(f"model.pack={pack!r}: must be an integer >= 1 (1 = no packing)")
    built_for = getattr(discriminator, "pack", 1)
    if built_for != pack:
        raise GenrunError(
            f"model.pack={pack} but the discriminator is built for pack={built_for}; "
            "(its config should say pack: ${model.pack})"
        )
    if feature_matching and not callable(getattr(discriminator, "features", None)):
        raise GenrunError(
            f"model.feature_matching=true needs a discriminator with features(x); "
            f"{type(discriminator).__name__} has none"
        )
