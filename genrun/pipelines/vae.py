"""VAE family (Kingma & Welling 2014): Gaussian posterior, reparameterisation, ELBO.

The decoder likelihood is Bernoulli on images rescaled to [0, 1] or Gaussian with a learned
scale (per dimension) on unbounded data such as the 2D mixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.errors import GenrunError
from genrun.losses.elbo import ELBO, bernoulli_log_prob, gaussian_kl_standard, gaussian_log_prob
from genrun.pipelines.base import Noise, OptimizerFactory, Pipeline, update

LIKELIHOODS = ("auto", "bernoulli", "gaussian")


class LogScale(nn.Module):
    """The learned log standard deviation of a Gaussian decoder, one value per data dimension."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.zeros(*shape))


class VAEPipeline(Pipeline):
    loss_kinds = ("likelihood",)
    primary_metric = "loss/vae"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        loss: ELBO,
        optimizers: Mapping[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        z_dim: int = 16,
        likelihood: str = "auto",
        data_range: Sequence[float] | None = None,
        arch: str = "conv",  # names the network files in the config; recorded, not used here
    ) -> None:
        super().__init__(loss, optimizers, device)
        if likelihood not in LIKELIHOODS:
            raise GenrunError(f"model.likelihood={likelihood!r}: valid: {', '.join(LIKELIHOODS)}")
        if likelihood == "auto":
            likelihood = "bernoulli" if data_range is not None else "gaussian"
        if likelihood == "bernoulli" and data_range is None:
            raise GenrunError("model.likelihood=bernoulli needs bounded data (images); use gaussian")
        self.likelihood, self.z_dim = likelihood, z_dim
        self.low, self.high = data_range if data_range is not None else (0.0, 1.0)
        self.encoder = self.add_net("encoder", encoder)
        self.decoder = self.add_net("decoder", decoder)
        decoder_nets = [self.decoder]
        if likelihood == "gaussian":
            self.log_scale = self.add_net("log_scale", LogScale(decoder.shape))
            decoder_nets.append(self.log_scale)
        self.add_optimizer("encoder", self.encoder)
        self.add_optimizer("generator", *decoder_nets)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def log_likelihood(self, decoded: Tensor, x: Tensor) -> Tensor:
        """log p(x | z) per example, from the decoder's raw output."""
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(decoded, (x - self.low) / (self.high - self.low))
        return gaussian_log_prob(decoded, self.log_scale.value, x)

    def step(self, next_batch: Callable[[], Batch]) -> dict[str, Tensor]:
        x = next_batch()["x"]
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation trick
        terms = self.loss(self.log_likelihood(self.decoder(z), x), gaussian_kl_standard(mu, logvar))
        loss = terms.pop("loss")
        update(loss, *self.optimizers.values())
        return {"loss/vae": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Noise:
        return {"z": self.gaussian(n, self.z_dim, generator=generator)}

    def to_data(self, decoded: Tensor) -> Tensor:
        """Decoder output -> the mean of p(x | z) in data space."""
        if self.likelihood == "bernoulli":
            return self.low + (self.high - self.low) * torch.sigmoid(decoded)
        return decoded

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.to_data(self.decoder(noise["z"]))
