"""Adversarial autoencoder (Makhzani et al. 2016): an autoencoder whose codes a critic matches to a prior.

Three phases per step (paper, sec. 2): reconstruction (encoder and decoder minimise
`recon_weight` x the squared error), regularisation (the critic tells prior samples from
codes, `n_critic` times, each on a fresh batch) and generator (the encoder moves the codes of
the last batch to where the critic scores them as prior samples). The latent game takes any
adversarial objective; the prior is a class from nets/priors.py. The encoder is deterministic or
Gaussian (`stochastic_encoder`, codes drawn by reparameterisation). Optimizer roles: `encoder`,
`decoder`, `discriminator` (the critic of codes).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.images import labelled_points, paired_rows
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.losses.adversarial import AdversarialLoss
from genrun.nets.gaussian import code_mean, code_sample
from genrun.nets.priors import Prior
from genrun.pipelines.base import Critic, Pipeline, critic_objective, critic_phases
from genrun.ranges import NonNegative, PositiveInt

PRIOR_POINTS = 2000  # prior samples drawn in grey under the codes of the latent picture


class AAEPipeline(Pipeline):
    loss_kinds = ("adversarial",)
    primary_metric = "aae/recon"
    default_metrics = ("recon", "probe")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        discriminator: nn.Module,
        prior_dist: Prior,
        loss: AdversarialLoss,
        optimizers: Mapping[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        z_dim: PositiveInt = 8,
        stochastic_encoder: bool = False,
        recon_weight: NonNegative = 1.0,
        n_critic: PositiveInt = 1,
    ) -> None:
        super().__init__(loss, optimizers, device)
        self.prior, self.z_dim, self.stochastic = prior_dist, z_dim, stochastic_encoder
        self.recon_weight = recon_weight
        self.encoder = self.add_net("encoder", encoder)
        self.decoder = self.add_net("decoder", decoder)
        self.discriminator = self.add_net("discriminator", discriminator)
        self.add_optimizer("encoder", self.encoder)
        self.add_optimizer("decoder", self.decoder)
        self.add_optimizer("discriminator", self.discriminator)
        self.phases = [
            Phase("reconstruction", ("encoder", "decoder"), self.reconstruction_objective),
            *critic_phases(self.loss, self.discriminator, self.regularisation_objective, n_critic, self.real_critic),
            Phase("G", ("encoder",), self.generator_objective, fresh_batch=False),
        ]

    def encode(self, x: Tensor) -> Tensor:
        """A code of q(z | x): deterministic, or a reparameterised draw of the Gaussian encoder."""
        return code_sample(self.encoder, x, self.stochastic)

    def reconstruction_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Encoder and decoder minimise the squared reconstruction error (mean per value)."""
        x = batch["x"]
        recon = (self.decoder(self.encode(x)) - x).pow(2).mean()
        return self.recon_weight * recon, {"aae/recon": recon}

    def regularisation_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The critic learns to tell prior samples ("real") from the codes of x ("fake")."""
        x = batch["x"]
        with torch.no_grad():
            codes = self.encode(x)
        prior = self.prior.sample(len(x), self.device)
        return critic_objective(self.loss, self.discriminator, prior, codes)

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        """The critic of codes and its "real" inputs, prior samples, for a lazy regulariser's phase."""
        return self.discriminator, self.prior.sample(len(batch["x"]), self.device)

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The encoder moves its codes to where the critic scores them as prior samples."""
        loss_g = self.loss.g_loss(self.discriminator(self.encode(batch["x"])))
        return loss_g, {"loss/g": loss_g}

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {"z": self.prior.sample(n, self.device, rng)}

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.decoder(noise["z"])

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Samples; fixed images above their reconstructions; 2D codes coloured by class over the prior (grey)."""
        pictures = {"samples": self.generate(fixed)}
        with self.evaluating():
            x = fixed["x"]
            codes = code_mean(self.encoder, x, self.stochastic)
            if x.dim() == 4:
                pictures["reconstructions"] = paired_rows(x, self.decoder(codes))
            if self.z_dim == 2:
                labels = fixed.get("y", torch.zeros(len(x), dtype=torch.long, device=x.device))
                # its own seeded generator: the same prior points every time, the global RNG untouched
                prior = self.prior.sample(PRIOR_POINTS, self.device, torch.Generator(self.device).manual_seed(0))
                background = torch.full((PRIOR_POINTS,), -1, device=x.device)
                pictures["latent"] = torch.cat([labelled_points(prior, background), labelled_points(codes, labels)])
        return pictures

    # -- what metrics read (genrun.metrics.heldout) -------------------------------------------
    def codes(self, batch: Batch) -> Tensor:
        """The codes of data (the Gaussian encoder's means): what a linear probe reads."""
        with self.evaluating():
            return code_mean(self.encoder, batch["x"], self.stochastic)

    def latent_of(self, batch: Batch) -> Noise:
        """The generator's inputs for data: their codes (genrun-sample's latent tools)."""
        with self.evaluating():
            return {"z": code_mean(self.encoder, batch["x"], self.stochastic)}

    def reconstruct(self, batch: Batch) -> Tensor:
        """decoder(code) of data, in data space."""
        with self.evaluating():
            return self.decoder(code_mean(self.encoder, batch["x"], self.stochastic))
