"""BiGAN (Donahue et al. 2017) / ALI (Dumoulin et al. 2017): a generator and an encoder against
one critic of (data, code) pairs.

The critic D(x, z) tells encoder pairs (x, E(x)) from generator pairs (G(z), z); G and E
are then updated together on the objective's generator side for both kinds of pair (the
"inverted labels" of Donahue et al. 2017, sec. 3.4): `g_loss` moves generator pairs toward
"real", `g_loss_real` moves encoder pairs toward "generated", so each objective's own
generator targets apply (e.g. LSGAN's c). `stochastic_encoder=false` is BiGAN's
deterministic E(x); `true` is ALI's Gaussian q(z | x) sampled by reparameterisation.
`discriminator` in the config is the plain critic body the family joins with the code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.images import labelled_points, paired_rows
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.losses.adversarial import AdversarialLoss
from genrun.nets.conditional import JointCritic, NetFactory
from genrun.nets.gaussian import code_mean, code_sample
from genrun.pipelines.base import Critic, Pipeline, critic_objective, critic_phases
from genrun.ranges import PositiveInt


class BiGANPipeline(Pipeline):
    loss_kinds = ("adversarial",)
    primary_metric = "loss/g"
    default_metrics = ("recon", "probe")

    def __init__(
        self,
        generator: nn.Module,
        encoder: nn.Module,
        discriminator: NetFactory,
        loss: AdversarialLoss,
        optimizers: Mapping[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        z_dim: PositiveInt = 32,
        stochastic_encoder: bool = False,
        embed_dim: PositiveInt = 128,
        features: PositiveInt = 128,
        n_critic: PositiveInt = 1,
    ) -> None:
        super().__init__(loss, optimizers, device)
        self.z_dim, self.stochastic = z_dim, stochastic_encoder
        self.generator = self.add_net("generator", generator)
        self.encoder = self.add_net("encoder", encoder)
        critic = JointCritic.coded(discriminator, z_dim, embed_dim, features=features, hidden=features)
        self.discriminator = self.add_net("discriminator", critic)
        self.add_optimizer("generator", self.generator)
        self.add_optimizer("encoder", self.encoder)
        self.add_optimizer("discriminator", self.discriminator)
        self.phases = [*critic_phases(self.loss, self.discriminator, self.discriminator_objective, n_critic,
                                      self.real_critic),
                       Phase("GE", ("generator", "encoder"), self.generator_encoder_objective, fresh_batch=False)]

    def encode(self, x: Tensor) -> Tensor:
        """BiGAN: E(x); ALI: a reparameterised draw of q(z | x)."""
        return code_sample(self.encoder, x, self.stochastic)

    def pair_critic(self, shape: torch.Size) -> Callable[[Tensor], Tensor]:
        """D on pairs packed as one flat tensor [x.flatten(1), z]: the critic a penalty interpolates."""
        d = shape[1:].numel()
        return lambda v: self.discriminator(v[:, :d].view(-1, *shape[1:]), v[:, d:])

    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Dmain (+ Dreg): encoder pairs (x, E(x)) are "real", generator pairs (G(z), z) "fake"."""
        x = batch["x"]
        with torch.no_grad():
            z = self.gaussian(len(x), self.z_dim)
            fake, code = self.generator(z), self.encode(x)
        packed_real, packed_fake = torch.cat([x.flatten(1), code], 1), torch.cat([fake.flatten(1), z], 1)
        return critic_objective(self.loss, self.pair_critic(x.shape), packed_real, packed_fake)

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        """The pair critic and the encoder pairs [x, E(x)] (E without gradients), for a lazy regulariser."""
        x = batch["x"]
        with torch.no_grad():
            code = self.encode(x)
        return self.pair_critic(x.shape), torch.cat([x.flatten(1), code], 1)

    def generator_encoder_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """G and E together: generator pairs toward "real", encoder pairs toward "generated"."""
        x = batch["x"]
        z = self.gaussian(len(x), self.z_dim)
        loss_ge = (self.loss.g_loss(self.discriminator(self.generator(z), z))
                   + self.loss.g_loss_real(self.discriminator(x, self.encode(x))))
        return loss_ge, {"loss/g": loss_ge}

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {"z": self.gaussian(n, self.z_dim, rng=rng)}

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.generator(noise["z"])

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Samples; fixed images above G(E(x)); 2D codes coloured by class."""
        pictures = {"samples": self.generate(fixed)}
        with self.evaluating():
            x = fixed["x"]
            codes = code_mean(self.encoder, x, self.stochastic)
            if x.dim() == 4:
                pictures["reconstructions"] = paired_rows(x, self.generator(codes))
            if self.z_dim == 2 and "y" in fixed:
                pictures["latent"] = labelled_points(codes, fixed["y"])
        return pictures

    # -- what metrics read (genrun.metrics.heldout) -------------------------------------------
    def codes(self, batch: Batch) -> Tensor:
        """E(x) of data (ALI: the posterior mean): what a linear probe reads."""
        with self.evaluating():
            return code_mean(self.encoder, batch["x"], self.stochastic)

    def latent_of(self, batch: Batch) -> Noise:
        """The generator's inputs for data: their codes (genrun-sample's latent tools)."""
        with self.evaluating():
            return {"z": code_mean(self.encoder, batch["x"], self.stochastic)}

    def reconstruct(self, batch: Batch) -> Tensor:
        """G(E(x)) of data, in data space."""
        with self.evaluating():
            return self.generator(code_mean(self.encoder, batch["x"], self.stochastic))

    def critic_network(self) -> nn.Module:
        """The critic's body on x (before it meets the code): what a probe reads (metrics=[d_probe])."""
        return self.discriminator.body
