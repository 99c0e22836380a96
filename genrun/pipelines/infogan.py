"""InfoGAN (Chen et al. 2016): a GAN whose generator input carries latent codes that a head Q
recovers from the samples, maximising a lower bound L_I on their mutual information.

G sees [z, one-hot(c_cat), c_cont] with c_cat uniform over `categorical` values and
c_cont uniform on [-1, 1]^`continuous`. Q shares the critic's body (nets/heads.py) and
outputs the categorical logits and, per continuous code, a Gaussian mean (and log-std
when `learn_std`). L_I = `lambda_info` x L_cat + `lambda_continuous` x L_cont (the paper,
sec. 5 and app. C: lambda 1 for discrete codes, a smaller one for continuous codes).

L_I is maximised over G and Q, and Q is the critic's body plus a head, so the information
term reaches the shared body (as in the authors' code, where Q's layers are D's variables and
both losses subtract it). A step is the paper's order, two phases:
- discriminator (`n_critic` times): the whole SharedBody (body, D head, Q head) minimises its
  adversarial loss - L_I on a coded batch generated without gradients through G; a constraint
  of the objective (WGAN's clipping) then applies to the critic (body and D head), not to Q's head;
- generator: G alone minimises its adversarial loss - L_I, the critic and Q frozen.
Optimizer roles: `discriminator` = SharedBody (body + D head + Q head), `generator` = G.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.images import labelled_points, square_indices
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.nets.conditional import NetFactory
from genrun.nets.heads import SharedBody
from genrun.pipelines.base import Critic, Pipeline, critic_objective, critic_phases
from genrun.ranges import NonNegative, NonNegativeInt, PositiveInt

MIN_LOG_STD = -4.0  # a learned std below e^-4 only inflates the continuous bound


def categorical_mi_bound(logits: Tensor, codes: Tensor) -> Tensor:
    """L_I = H(c) + E[log Q(c | x)] for c uniform over k values (Chen et al. 2016, eq. 4), nats."""
    return math.log(logits.shape[1]) - F.cross_entropy(logits, codes)


def gaussian_nll(mean: Tensor, log_std: Tensor, c: Tensor) -> Tensor:
    """-log N(c; mean, exp(log_std)^2), summed over code dimensions, mean over the batch."""
    elem = 0.5 * ((c - mean) * torch.exp(-log_std)).pow(2) + log_std + 0.5 * math.log(2 * math.pi)
    return elem.sum(1).mean()


def continuous_mi_bound(mean: Tensor, log_std: Tensor, c: Tensor) -> Tensor:
    """L_I = h(c) + E[log Q(c | x)] for c uniform on [-1, 1]^n (h = n log 2), factored Gaussian Q."""
    return c.shape[1] * math.log(2.0) - gaussian_nll(mean, log_std, c)


class InfoGANPipeline(Pipeline):
    loss_kinds = ("adversarial",)
    primary_metric = "loss/g"
    default_metrics = ("code_accuracy", "code_mi", "probe")

    def __init__(
        self,
        generator: NetFactory,
        discriminator: NetFactory,
        loss: AdversarialLoss,
        optimizers: Mapping[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        z_dim: PositiveInt = 62,
        categorical: PositiveInt = 10,
        continuous: NonNegativeInt = 2,
        lambda_info: NonNegative = 1.0,
        lambda_continuous: NonNegative = 0.1,
        learn_std: bool = False,
        features: PositiveInt = 128,
        n_critic: PositiveInt = 1,
    ) -> None:
        if categorical < 2:
            raise GenrunError(f"model.categorical={categorical}: the categorical code needs k >= 2 values")
        if continuous < 0 or lambda_info < 0 or lambda_continuous < 0:
            raise GenrunError(f"model.continuous={continuous}, model.lambda_info={lambda_info} and "
                              f"model.lambda_continuous={lambda_continuous} must be >= 0")
        super().__init__(loss, optimizers, device)
        self.z_dim, self.k, self.n_cont = z_dim, categorical, continuous
        self.learn_std = learn_std
        self.info_weights = {"info/cat": lambda_info, "info/cont": lambda_continuous}
        q_dim = categorical + continuous * (2 if learn_std else 1)
        self.generator = self.add_net("generator", generator(z_dim=z_dim + categorical + continuous))
        self.discriminator = self.add_net("discriminator", SharedBody(discriminator, q_dim, features, features))
        self.add_optimizer("discriminator", self.discriminator)  # body, D head and Q head
        self.add_optimizer("generator", self.generator)
        self.phases = [*critic_phases(self.loss, self.discriminator.critic_layers(), self.discriminator_objective,
                                      n_critic, self.real_critic),
                       Phase("G", ("generator",), self.generator_objective, fresh_batch=False)]

    # -- codes ------------------------------------------------------------------------------
    def latent(self, noise: Noise) -> Tensor:
        """G's input [z, one-hot(code), cont]."""
        return torch.cat([noise["z"], F.one_hot(noise["code"], self.k).to(noise["z"].dtype), noise["cont"]], 1)

    def split_q(self, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q's output -> categorical logits, continuous means, continuous log-stds."""
        logits, mean = q[:, : self.k], q[:, self.k : self.k + self.n_cont]
        if self.learn_std:
            log_std = q[:, self.k + self.n_cont :].clamp(min=MIN_LOG_STD)
        else:
            log_std = torch.zeros_like(mean)  # fixed unit std: the paper's factored Gaussian
        return logits, mean, log_std

    def info_terms(self, q: Tensor, noise: Noise) -> dict[str, Tensor]:
        """The MI lower bound's parts: categorical and continuous, each in nats."""
        logits, mean, log_std = self.split_q(q)
        terms = {"info/cat": categorical_mi_bound(logits, noise["code"])}
        if self.n_cont:
            terms["info/cont"] = continuous_mi_bound(mean, log_std, noise["cont"])
        return terms

    def weighted_info(self, info: dict[str, Tensor]) -> Tensor:
        """L_I = lambda_info L_cat + lambda_continuous L_cont: what both phases subtract from their losses."""
        return sum(self.info_weights[name] * term for name, term in info.items())

    # -- training ---------------------------------------------------------------------------
    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Dmain (+ Dreg) and Q: body, D head and Q head minimise the critic loss - L_I, with L_I
        read from Q on the same pass over the coded batch (generated without gradients)."""
        real = batch["x"]
        noise = self.sample_noise(real.shape[0])
        with torch.no_grad():
            fake = self.generator(self.latent(noise))
        q_of_fake: list[Tensor] = []

        def critic(x: Tensor) -> Tensor:
            logits, q = self.discriminator.both(x)
            if x is fake:
                q_of_fake.append(q)
            return logits

        loss, scalars = critic_objective(self.loss, critic, real, fake)
        info = self.info_terms(q_of_fake[0], noise)
        return loss - self.weighted_info(info), {**scalars, **info}

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        """The critic (body and D head) and the real batch, for a lazy regulariser's phase."""
        return self.discriminator, batch["x"]

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """G: min adversarial loss - L_I through the critic and Q (frozen in this phase)."""
        noise = self.sample_noise(batch["x"].shape[0])
        logits, q = self.discriminator.both(self.generator(self.latent(noise)))
        loss_g = self.loss.g_loss(logits)
        info = self.info_terms(q, noise)
        return loss_g - self.weighted_info(info), {"loss/g": loss_g, **info}

    # -- sampling and pictures -------------------------------------------------------------
    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {
            "z": self.gaussian(n, self.z_dim, rng=rng),
            "code": torch.randint(self.k, (n,), device=self.device, generator=rng),
            "cont": torch.rand(n, self.n_cont, device=self.device, generator=rng) * 2 - 1,
        }

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.generator(self.latent(noise))

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Samples; one row per categorical value over the same noise; a sweep of each
        continuous code over [-2, 2] (columns) per categorical value (rows). 2D data: samples
        coloured by their categorical value."""
        samples = self.generate(fixed)
        if samples.dim() == 2:
            return {"samples": samples, "classes": labelled_points(samples, fixed["code"])}
        row, col = square_indices(self.k, self.device)
        grid = {"z": fixed["z"][col % len(fixed["z"])], "code": row, "cont": fixed["cont"][col % len(fixed["z"])]}
        pictures = {"samples": samples, "classes": self.generate(grid)}
        values = torch.linspace(-2, 2, self.k, device=self.device)
        for j in range(self.n_cont):
            cont = torch.zeros(self.k * self.k, self.n_cont, device=self.device)
            cont[:, j] = values[col]
            sweep = {"z": fixed["z"][:1].expand(self.k * self.k, -1), "code": row, "cont": cont}
            pictures[f"continuous{j}"] = self.generate(sweep)
        return pictures

    # -- what metrics read (genrun.metrics.heldout) -------------------------------------------
    def codes(self, batch: Batch) -> Tensor:
        """Q's outputs for data (categorical logits and continuous parameters): what a probe reads."""
        with self.evaluating():
            return self.discriminator.both(batch["x"])[1]

    def categorical_code(self, batch: Batch) -> Tensor:
        """Q's categorical logits for data: InfoGAN's unsupervised classes (code accuracy)."""
        return self.codes(batch)[:, : self.k]

    def critic_network(self) -> nn.Module:
        """The body D and Q share: what a probe of the critic reads (metrics=[d_probe])."""
        return self.discriminator.body
