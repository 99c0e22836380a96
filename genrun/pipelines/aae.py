"""Adversarial autoencoder (Makhzani et al. 2016): an autoencoder whose codes a critic matches to a prior.

Three phases per step (paper, sec. 2): reconstruction (encoder and decoder minimise
`recon_weight` x the squared error), regularisation (the critic tells prior samples from
codes, `n_critic` times, each on a fresh batch) and generator (the encoder moves the codes of
the last batch to where the critic scores them as prior samples). The latent game takes any adversarial objective; the
prior is a class from nets/priors.py. The encoder is deterministic or Gaussian
(`stochastic_encoder`, codes drawn by reparameterisation).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch, DataBundle
from genrun.engine.images import labelled_points, paired_rows
from genrun.losses.adversarial import AdversarialLoss
from genrun.metrics.recon import autoencoder_metrics
from genrun.nets.priors import Prior
from genrun.pipelines.base import (
    Noise,
    OptimizerFactory,
    Phase,
    Pipeline,
    critic_objective,
    critic_phase,
)
from genrun.schema import NonNegative, PositiveInt

PRIOR_POINTS = 2000  # prior samples drawn in grey under the codes of the latent picture


class AAEPipeline(Pipeline):
    loss_kinds = ("adversarial",)
    primary_metric = "aae/recon"

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
        self.recon_weight, self.n_critic = recon_weight, n_critic
        self.encoder = self.add_net("encoder", encoder)
        self.decoder = self.add_net("decoder", decoder)
        self.discriminator = self.add_net("discriminator", discriminator)
        self.add_optimizer("encoder", self.encoder)
        self.add_optimizer("generator", self.decoder)
        self.add_optimizer("discriminator", self.discriminator)
        self.phases = [
            Phase("reconstruction", ("encoder", "generator"), self.reconstruction_objective),
            critic_phase(self.loss, self.discriminator, self.regularisation_objective, n_critic),
            Phase("G", ("encoder",), self.generator_objective, fresh_batch=False),
        ]

    def code_mean(self, x: Tensor) -> Tensor:
        """The encoder's code (its mean when stochastic)."""
        out = self.encoder(x)
        return out.chunk(2, dim=1)[0] if self.stochastic else out

    def encode(self, x: Tensor) -> Tensor:
        """A code of q(z | x): deterministic, or a reparameterised draw of the Gaussian encoder."""
        if not self.stochastic:
            return self.encoder(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

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

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The encoder moves its codes to where the critic scores them as prior samples."""
        loss_g = self.loss.g_loss(self.discriminator(self.encode(batch["x"])))
        return loss_g, {"loss/g": loss_g}

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Noise:
        return {"z": self.prior.sample(n, self.device, generator)}

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.decoder(noise["z"])

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Samples; fixed images above their reconstructions; 2D codes coloured by class over the prior (grey)."""
        pictures = {"samples": self.generate(fixed)}
        with self.evaluating():
            x = fixed["x"]
            codes = self.code_mean(x)
            if x.dim() == 4:
                pictures["reconstructions"] = paired_rows(x, self.decoder(codes))
            if self.z_dim == 2:
                labels = fixed.get("y", torch.zeros(len(x), dtype=torch.long, device=x.device))
                # its own seeded generator: the same prior points every time, the global RNG untouched
                prior = self.prior.sample(PRIOR_POINTS, self.device, torch.Generator(self.device).manual_seed(0))
                background = torch.full((PRIOR_POINTS,), -1, device=x.device)
                pictures["latent"] = torch.cat([labelled_points(prior, background), labelled_points(codes, labels)])
        return pictures

    def evaluate(self, data: DataBundle, generator: torch.Generator) -> dict[str, float]:
        """Held-out `recon_mse` and linear probes of the code means (with labels)."""
        with self.evaluating():
            return autoencoder_metrics(self.code_mean, self.decoder, data, self.device)
