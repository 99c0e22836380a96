"""VAE family (Kingma & Welling 2014): Gaussian posterior, reparameterisation, ELBO.

The decoder likelihood is, on images rescaled to [0, 1], Bernoulli (for binarised pixels,
`dataset.binarize=static|dynamic`) or the continuous Bernoulli (greyscale pixels); on unbounded
data such as the 2D mixtures, Gaussian with a learned scale per dimension. The networks take
extra inputs from `condition(batch)` (none here; the class label in the CVAE, cvae.py).
Optimizer roles: `encoder` (q) and `decoder` (p). Metrics read `elbo_per_example`,
`importance_weighted_bound`, `reconstruct` (the posterior mean's reconstruction) and `codes`
(the posterior means) on held-out data; `likelihood_description` says what the bounds bound;
`discrete_log_likelihood` gives the IWAE bound in the unit of the exact-likelihood families
(nll, bpd: nats per image of discrete pixels).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.images import labelled_points, paired_rows
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.elbo import (
    ELBO,
    bernoulli_log_prob,
    continuous_bernoulli_log_prob,
    continuous_bernoulli_mean,
    diagonal_gaussian_log_prob,
    gaussian_kl_standard,
    gaussian_log_prob,
    importance_weighted_bound,
)
from genrun.losses.likelihood import dequantize, discrete_log_likelihood, to_levels
from genrun.nets.gaussian import gaussian_parameters, reparameterize
from genrun.pipelines.base import Pipeline
from genrun.ranges import Bounds, PositiveInt, Shape

LIKELIHOODS = ("auto", "bernoulli", "continuous_bernoulli", "gaussian")


def pick_likelihood(likelihood: str, data_range: Bounds, binarize: str) -> str:
    """`auto`: Bernoulli for binarised images, continuous Bernoulli for greyscale ones, Gaussian
    for unbounded data; an explicit choice is checked against the data."""
    if likelihood not in LIKELIHOODS:
        raise GenrunError(f"model.likelihood={likelihood!r}: valid: {', '.join(LIKELIHOODS)}")
    if likelihood == "auto":
        if data_range is None:
            return "gaussian"
        return "bernoulli" if binarize != "none" else "continuous_bernoulli"
    if likelihood != "gaussian" and data_range is None:
        raise GenrunError(f"model.likelihood={likelihood} needs bounded data (images); use gaussian")
    return likelihood


def likelihood_description(likelihood: str, binarize: str) -> str:
    """What the reported ELBO bounds, in words (metrics.json's `elbo_likelihood`)."""
    if likelihood == "bernoulli" and binarize != "none":
        return f"bernoulli: log-probability of pixels binarised {binarize} (nats per example)"
    if likelihood == "bernoulli":
        return ("bernoulli on greyscale pixels: NOT a log-likelihood bound (set dataset.binarize=dynamic, "
                "or model.likelihood=continuous_bernoulli)")
    if likelihood == "continuous_bernoulli":
        return "continuous_bernoulli: log-density of pixels scaled to [0, 1] (nats per example)"
    return "gaussian: log-density in data space (nats per example)"


class LogScale(nn.Module):
    """The learned log standard deviation of a Gaussian decoder, one value per data dimension."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.zeros(*shape))


class VAEPipeline(Pipeline):
    loss_kinds = ("likelihood",)
    primary_metric = "loss/vae"
    default_metrics = ("elbo", "recon", "probe")  # iwae (k passes per example) on request: metrics=[auto,iwae]
    likelihood_uses_k = True  # its nll/bpd is the IWAE bound with k importance samples

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        loss: ELBO,
        optimizers: Mapping[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        z_dim: PositiveInt = 16,
        likelihood: str = "auto",
        data_range: Bounds = None,
        binarize: str = "none",
    ) -> None:
        super().__init__(loss, optimizers, device)
        self.likelihood, self.z_dim = pick_likelihood(likelihood, data_range, binarize), z_dim
        self.binarize = binarize
        self.likelihood_description = likelihood_description(self.likelihood, binarize)
        self.low, self.high = data_range if data_range is not None else (0.0, 1.0)
        self.encoder = self.add_net("encoder", encoder)
        self.decoder = self.add_net("decoder", decoder)
        decoder_nets = [self.decoder]
        if self.likelihood == "gaussian":
            self.log_scale = self.add_net("log_scale", LogScale(decoder.shape))
            decoder_nets.append(self.log_scale)
        self.add_optimizer("encoder", self.encoder)
        self.add_optimizer("decoder", *decoder_nets)
        self.phases = [Phase("elbo", ("encoder", "decoder"), self.elbo_objective)]

    # -- the model ------------------------------------------------------------------------
    def condition(self, batch: Batch) -> tuple[Tensor, ...]:
        """Extra inputs of both networks for a batch of data; none for the plain VAE."""
        return ()

    def noise_condition(self, noise: Noise) -> tuple[Tensor, ...]:
        """Extra inputs of the decoder for `sample_noise` inputs; none for the plain VAE."""
        return ()

    def encode(self, x: Tensor, *cond: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance."""
        return gaussian_parameters(self.encoder(x, *cond))

    def decode(self, z: Tensor, *cond: Tensor) -> Tensor:
        """The decoder's raw output (logits for Bernoulli, the mean for Gaussian)."""
        return self.decoder(z, *cond)

    def log_likelihood(self, decoded: Tensor, x: Tensor) -> Tensor:
        """log p(x | z) per example, from the decoder's raw output."""
        if self.likelihood == "gaussian":
            return gaussian_log_prob(decoded, self.log_scale.value, x)
        unit = (x - self.low) / (self.high - self.low)
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(decoded, unit)
        return continuous_bernoulli_log_prob(decoded, unit)

    def to_data(self, decoded: Tensor) -> Tensor:
        """Decoder output -> the mean of p(x | z) in data space."""
        if self.likelihood == "gaussian":
            return decoded
        mean = torch.sigmoid(decoded) if self.likelihood == "bernoulli" else continuous_bernoulli_mean(decoded)
        return self.low + (self.high - self.low) * mean

    # -- the protocol ---------------------------------------------------------------------
    def elbo_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Encoder and decoder together minimise the negative ELBO of the batch."""
        x, cond = batch["x"], self.condition(batch)
        mu, logvar = self.encode(x, *cond)
        z = reparameterize(mu, logvar)
        terms = self.loss(self.log_likelihood(self.decode(z, *cond), x), gaussian_kl_standard(mu, logvar))
        loss = terms.pop("loss")
        return loss, {"loss/vae": loss, **terms}

    def importance_weighted_bound(self, batch: Batch, k: int, rng: torch.Generator | None = None,
                                  decodes_per_pass: int = 8192) -> Tensor:
        """The k-sample importance-weighted bound on log p(x) (Burda et al. 2016) per example, in
        nats (the same likelihood as the ELBO: see `likelihood_description`; the CVAE's is of
        log p(x | y)). The encoder runs once; the k codes are decoded in passes of at most
        `decodes_per_pass` images, so memory stays bounded for k = 5000."""
        x, cond = batch["x"], self.condition(batch)
        with self.evaluating():
            mu, logvar = self.encode(x, *cond)
            per_pass = max(1, decodes_per_pass // len(x))
            log_weights = []
            for start in range(0, k, per_pass):
                m = min(per_pass, k - start)
                z = reparameterize(mu, logvar, rng, samples=m)  # [m, B, z_dim]
                repeat = [t.expand(m, *t.shape).reshape(m * len(t), *t.shape[1:]) for t in (x, *cond)]
                log_px = self.log_likelihood(self.decode(z.reshape(-1, z.shape[-1]), *repeat[1:]), repeat[0])
                log_prior = diagonal_gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
                log_posterior = diagonal_gaussian_log_prob(z, mu, logvar)
                log_weights.append(log_px.view(m, len(x)) + log_prior - log_posterior)
            return importance_weighted_bound(torch.cat(log_weights))

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {"z": self.gaussian(n, self.z_dim, rng=rng)}

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

    # -- what metrics read (genrun.metrics.heldout, genrun.metrics.likelihood) -------------------
    def elbo_per_example(self, batch: Batch, rng: torch.Generator | None = None) -> Tensor:
        """The ELBO of each example (beta = 1, one posterior draw from `rng`), in nats."""
        x, cond = batch["x"], self.condition(batch)
        with self.evaluating():
            mu, logvar = self.encode(x, *cond)
            z = reparameterize(mu, logvar, rng)
            return self.log_likelihood(self.decode(z, *cond), x) - gaussian_kl_standard(mu, logvar)

    def reconstruct(self, batch: Batch) -> Tensor:
        """The mean of p(x | z) at the posterior mean of z, in data space."""
        x, cond = batch["x"], self.condition(batch)
        with self.evaluating():
            return self.to_data(self.decode(self.encode(x, *cond)[0], *cond))

    def codes(self, batch: Batch) -> Tensor:
        """The posterior means of data: what a linear probe reads."""
        with self.evaluating():
            return self.encode(batch["x"], *self.condition(batch))[0]

    # -- the unit of the exact-likelihood families (genrun.metrics.likelihood: nll, bpd) ---------
    @property
    def pixel_levels(self) -> int | None:
        """Values per pixel of the discrete data its likelihood gives a probability of: 2 (Bernoulli
        on binarised pixels), 256 (the continuous Bernoulli, a density on [0, 1], of 8-bit pixels
        dequantised), None (a Gaussian of points; Bernoulli on greyscale pixels, no likelihood)."""
        if self.likelihood == "bernoulli" and self.binarize != "none":
            return 2
        return 256 if self.likelihood == "continuous_bernoulli" else None

    @property
    def discrete_likelihood_description(self) -> str:
        """What nll and bpd measure of this VAE (metrics.json's protocol)."""
        if self.pixel_levels == 2:
            return f"IWAE bound (k importance samples) on log P of pixels binarised {self.binarize}; nats per example"
        return ("IWAE bound (k importance samples) on the continuous Bernoulli's log p(y) of dequantised 8-bit pixels, "
                "y = (x_255 + u) / 256, u ~ U[0, 1), one draw per example; nll = -bound + D log 256 (nats per example)")

    def discrete_log_likelihood(self, batch: Batch, k: int, rng: torch.Generator | None = None) -> Tensor:
        """The k-sample IWAE bound on log P(x) of discrete images, nats per example: of binarised
        pixels as they are; of 8-bit pixels through y = (x_255 + u) / 256 (one draw from `rng`), the
        bound on log p(y) minus D log 256, as for the flows."""
        if self.pixel_levels == 2:
            return self.importance_weighted_bound(batch, k, rng)
        x = batch["x"]
        y = dequantize(to_levels(x, self.low, self.high, 256), 256, rng)
        bound = self.importance_weighted_bound({**batch, "x": self.low + (self.high - self.low) * y}, k, rng)
        return discrete_log_likelihood(bound, x[0].numel(), 256)

    def latent_of(self, batch: Batch) -> Noise:
        """The decoder's inputs for data: posterior means (genrun-sample's latent tools)."""
        with self.evaluating():
            return {"z": self.encode(batch["x"], *self.condition(batch))[0]}
