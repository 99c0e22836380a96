"""A GAN whose generator draws discrete values: a categorical over `levels` values per pixel (Hjelm
et al. 2018's discrete setting: binarised MNIST has 2 levels, dataset=quantized_digits K).

Sampling is not differentiable, so the generator learns one of two ways, by its objective:
- `loss=bgan`: the boundary-seeking GAN's importance-sampling estimator (Hjelm et al. 2018, alg. 1):
  M = `samples_per_z` draws per z, normalised importance weights w~ = softmax_m V(x_m) of the critic's
  logits, and G minimises -sum_m w~_m log g(x_m | z) (genrun.losses.adversarial.BoundarySeeking.
  discrete_g_loss); the critic sees all N x M draws;
- any other adversarial objective: the continuous relaxation (Gumbel-softmax with `temperature`;
  Jang et al. 2017): the critic and the generator see the relaxed pixels (the expected value under
  the relaxed one-hot), the baseline Hjelm et al. compare with.
Samples (metrics, pictures) are hard draws from uniforms in the sampling noise, so a seed gives the
same images. Optimizer roles: `generator`, `discriminator`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.nets.discrete import (
    CategoricalPixels,
    categorical_indices,
    categorical_log_prob,
    gumbel_softmax_values,
)
from genrun.pipelines.base import Critic, Pipeline, critic_objective, critic_phases
from genrun.ranges import Bounds, Positive, PositiveInt, Shape


def level_values(levels: int, value_range: Sequence[float]) -> Tensor:
    """The `levels` evenly spaced values of the data range: {low, high} for binarised images."""
    low, high = (float(v) for v in value_range)
    return torch.linspace(low, high, levels)


class DiscreteGANPipeline(Pipeline):
    loss_kinds = ("adversarial",)
    primary_metric = "loss/g"

    def __init__(
        self,
        generator: Callable[..., nn.Module],
        discriminator: nn.Module,
        loss: AdversarialLoss,
        optimizers: Mapping[str, OptimizerFactory],
        shape: Shape,
        device: torch.device | str = "cpu",
        z_dim: PositiveInt = 64,
        levels: PositiveInt | None = None,
        binarize: str = "none",
        value_range: Bounds = (-1.0, 1.0),
        samples_per_z: PositiveInt = 20,
        temperature: Positive = 0.5,
        n_critic: PositiveInt = 1,
    ) -> None:
        levels = levels if levels else (2 if binarize != "none" else None)
        if levels is None or levels < 2 or value_range is None:
            raise GenrunError("model=discrete_gan needs discrete images: dataset.binarize=static|dynamic (2 levels) "
                              "or dataset=quantized_digits (dataset.levels)")
        if not temperature > 0:
            raise GenrunError(f"model.temperature={temperature}: must be > 0")
        super().__init__(loss, optimizers, device)
        self.z_dim, self.shape, self.m, self.temperature = z_dim, tuple(shape), samples_per_z, temperature
        self.values = level_values(levels, value_range).to(self.device)
        self.importance = callable(getattr(loss, "discrete_g_loss", None))  # loss=bgan: Hjelm et al.'s estimator
        self.generator = self.add_net("generator", CategoricalPixels(generator, shape, levels))
        self.discriminator = self.add_net("discriminator", discriminator)
        self.add_optimizer("generator", self.generator)
        self.add_optimizer("discriminator", self.discriminator)
        self.phases = [*critic_phases(self.loss, self.discriminator, self.discriminator_objective, n_critic,
                                      self.real_critic),
                       Phase("G", ("generator",), self.generator_objective, fresh_batch=False)]

    # -- draws ------------------------------------------------------------------------------
    def hard_samples(self, logits: Tensor, draws: int) -> tuple[Tensor, Tensor]:
        """`draws` samples per z: pixel values [draws * N, C, H, W] and their level indices [draws, N, C, H, W]."""
        u = torch.rand(draws, *logits.shape[:1], *logits.shape[2:], device=logits.device)
        indices = categorical_indices(logits, u)
        return self.values[indices].flatten(0, 1), indices

    def fake_batch(self, n: int) -> Tensor:
        """Generated inputs of the critic: N x M hard draws (bgan) or N relaxed samples (no gradient to G)."""
        with torch.no_grad():
            logits = self.generator(self.gaussian(n, self.z_dim))
            if self.importance:
                return self.hard_samples(logits, self.m)[0]
            return gumbel_softmax_values(logits, self.values, self.temperature)

    # -- training ---------------------------------------------------------------------------
    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        real = batch["x"]
        return critic_objective(self.loss, self.discriminator, real, self.fake_batch(len(real)).to(real.dtype))

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        return self.discriminator, batch["x"]

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Importance-weighted log-likelihood of M hard draws per z (bgan), else the relaxed samples' g_loss."""
        n = len(batch["x"])
        logits = self.generator(self.gaussian(n, self.z_dim))
        if not self.importance:
            loss_g = self.loss.g_loss(self.discriminator(gumbel_softmax_values(logits, self.values, self.temperature)))
            return loss_g, {"loss/g": loss_g}
        with torch.no_grad():
            x, indices = self.hard_samples(logits, self.m)
        critic = self.discriminator(x.to(batch["x"].dtype)).view(self.m, n)
        loss_g = self.loss.discrete_g_loss(critic, categorical_log_prob(logits, indices))
        return loss_g, {"loss/g": loss_g, "bgan/critic": critic.float().mean()}

    # -- sampling ---------------------------------------------------------------------------
    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        """The code z and one uniform per pixel (the categorical draws), so a seed fixes the images."""
        return {"z": self.gaussian(n, self.z_dim, rng=rng),
                "u": torch.rand(n, *self.shape, device=self.device, generator=rng)}

    def generate(self, noise: Noise) -> Tensor:
        with self.evaluating():
            return self.values[categorical_indices(self.generator(noise["z"]), noise["u"])]

    def critic_network(self) -> nn.Module:
        """The critic whose pooled activations a probe reads (metrics=[d_probe])."""
        return self.discriminator
