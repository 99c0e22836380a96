"""Adversarial autoencoder (Makhzani et al. 2016): an autoencoder whose codes a critic matches to a prior.

Three phases per step (paper, sec. 2): reconstruction (encoder and decoder minimise
`recon_weight` x the squared error), regularisation (the critic tells prior samples from
codes, `n_critic` times) and generator (the encoder moves its codes to where the critic
scores them as prior samples). The latent game takes any adversarial objective; the
prior is a class from nets/priors.py. The encoder is deterministic or Gaussian
(`stochastic_encoder`, codes drawn by reparameterisation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch, DataBundle
from genrun.engine.images import labelled_points, paired_rows
from genrun.losses.adversarial import AdversarialLoss
from genrun.metrics.recon import autoencoder_metrics
from genrun.nets.priors import Prior
from genrun.pipelines.base import Noise, OptimizerFactory, Pipeline, critic_update, frozen, update
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
        self.opt_e = self.add_optimizer("encoder", self.encoder)
        self.opt_g = self.add_optimizer("generator", self.decoder)
        self.opt_d = self.add_optimizer("discriminator", self.discriminator)

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

    def step(self, next_batch: Callable[[], Batch]) -> dict[str, Tensor]:
        x = next_batch()["x"]
        scalars = self.reconstruction_phase(x)
        for i in range(self.n_critic):
            x = next_batch()["x"] if i else x
            scalars.update(self.regularisation_phase(x))
        scalars.update(self.generator_phase(x))
        return scalars

    def reconstruction_phase(self, x: Tensor) -> dict[str, Tensor]:
        """Encoder and decoder minimise the squared reconstruction error (mean per value)."""
        recon = (self.decoder(self.encode(x)) - x).pow(2).mean()
        update(self.recon_weight * recon, self.opt_e, self.opt_g)
        return {"aae/recon": recon.detach()}

    def regularisation_phase(self, x: Tensor) -> dict[str, Tensor]:
        """The critic learns to tell prior samples ("real") from the codes of x ("fake")."""
        with torch.no_grad():
            codes = self.encode(x)
        prior = self.prior.sample(len(x), self.device)
        return critic_update(self.loss, self.discriminator, self.opt_d, self.discriminator, prior, codes)

    def generator_phase(self, x: Tensor) -> dict[str, Tensor]:
        """The encoder moves its codes to where the frozen critic scores them as prior samples."""
        with frozen(self.discriminator):
            loss_g = self.loss.g_loss(self.discriminator(self.encode(x)))
            update(loss_g, self.opt_e)
        return {"loss/g": loss_g.detach()}

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
