"""VAE family (Kingma & Welling 2014): Gaussian posterior, reparameterisation, ELBO.

The decoder likelihood is Bernoulli on images rescaled to [0, 1] or Gaussian with a learned
scale (per dimension) on unbounded data such as the 2D mixtures. The networks take extra
inputs from `condition(batch)` (none here; the class label in the CVAE, cvae.py).
End-of-run metrics on the held-out split: `elbo` (nats per example, higher is better),
`recon_mse` (of the posterior mean's reconstruction) and linear probes of the codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch, DataBundle
from genrun.engine.images import labelled_points, paired_rows
from genrun.errors import GenrunError
from genrun.losses.elbo import ELBO, bernoulli_log_prob, gaussian_kl_standard, gaussian_log_prob
from genrun.metrics.heldout import in_chunks, split_batch
from genrun.metrics.probe import probe_accuracies
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
    probe_codes = True  # linear probe of the posterior means in evaluate()

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

    # -- the model ------------------------------------------------------------------------
    def condition(self, batch: Batch) -> tuple[Tensor, ...]:
        """Extra inputs of both networks for a batch of data; none for the plain VAE."""
        return ()

    def noise_condition(self, noise: Noise) -> tuple[Tensor, ...]:
        """Extra inputs of the decoder for `sample_noise` inputs; none for the plain VAE."""
        return ()

    def encode(self, x: Tensor, *cond: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance."""
        mu, logvar = self.encoder(x, *cond).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor, *cond: Tensor) -> Tensor:
        """The decoder's raw output (logits for Bernoulli, the mean for Gaussian)."""
        return self.decoder(z, *cond)

    def log_likelihood(self, decoded: Tensor, x: Tensor) -> Tensor:
        """log p(x | z) per example, from the decoder's raw output."""
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(decoded, (x - self.low) / (self.high - self.low))
        return gaussian_log_prob(decoded, self.log_scale.value, x)

    def to_data(self, decoded: Tensor) -> Tensor:
        """Decoder output -> the mean of p(x | z) in data space."""
        if self.likelihood == "bernoulli":
            return self.low + (self.high - self.low) * torch.sigmoid(decoded)
        return decoded

    # -- the protocol ---------------------------------------------------------------------
    def step(self, next_batch: Callable[[], Batch]) -> dict[str, Tensor]:
        batch = next_batch()
        x, cond = batch["x"], self.condition(batch)
        mu, logvar = self.encode(x, *cond)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation trick
        terms = self.loss(self.log_likelihood(self.decode(z, *cond), x), gaussian_kl_standard(mu, logvar))
        loss = terms.pop("loss")
        update(loss, *self.optimizers.values())
        return {"loss/vae": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Noise:
        return {"z": self.gaussian(n, self.z_dim, generator=generator)}

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.to_data(self.decode(noise["z"], *self.noise_condition(noise)))

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Samples; fixed images above their reconstructions; a 2D latent space coloured by class."""
        pictures = {"samples": self.generate(fixed)}
        with self.evaluating():
            x, cond = fixed["x"], self.condition(fixed)
            mu, _ = self.encode(x, *cond)
            if x.dim() == 4:
                pictures["reconstructions"] = paired_rows(x, self.to_data(self.decode(mu, *cond)))
            if mu.shape[1] == 2 and "y" in fixed:
                pictures["latent"] = labelled_points(mu, fixed["y"])
        return pictures

    def evaluate(self, data: DataBundle, generator: torch.Generator) -> dict[str, float]:
        """Held-out ELBO (one posterior sample per example, beta = 1), reconstruction error, probes."""
        test = split_batch(data, "test", self.device)
        if test is None:
            return {}

        def per_example(batch: Batch) -> Tensor:
            x, cond = batch["x"], self.condition(batch)
            mu, logvar = self.encode(x, *cond)
            z = mu + torch.randn(mu.shape, device=mu.device, generator=generator) * (0.5 * logvar).exp()
            elbo = self.log_likelihood(self.decode(z, *cond), x) - gaussian_kl_standard(mu, logvar)
            mse = (self.to_data(self.decode(mu, *cond)) - x).pow(2).flatten(1).mean(1)
            return torch.stack([elbo, mse], 1)

        with self.evaluating():
            values = in_chunks(per_example, test).mean(0)
            metrics = {"elbo": float(values[0]), "recon_mse": float(values[1])}
            if self.probe_codes:
                metrics.update(probe_accuracies(lambda b: self.encode(b["x"])[0], data, self.device))
        return metrics
