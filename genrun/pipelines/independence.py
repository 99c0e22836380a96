"""Adversarial independence (Brakel & Bengio 2017, "Learning independent features with adversarial
nets for non-linear ICA"): an encoder whose outputs a critic cannot tell from their product of
marginals, which makes them independent: it recovers independent sources from their mixture.

Samples of the product of the marginals are the encoder's outputs with every dimension shuffled
across the batch on its own (the paper's resampling). A step is two phases:
- critic (`n_critic` times, fresh batches): the shuffled outputs are its "real" inputs, the joint
  outputs its "fake" ones (any adversarial objective), the encoder held fixed;
- encoder (and decoder): the joint outputs move to where the critic scores them as the product
  (the objective's generator loss), plus `recon_weight` x the squared error of a decoder's
  reconstruction of the input from them (the paper's guard against features that drop information;
  0 turns it off).
The encoder ends in a standardisation (zero mean, unit variance per output, no learned scale), as
in the paper, so independence cannot be had by shrinking outputs. Optimizer roles: `encoder`,
`decoder`, `discriminator`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.pipelines.base import Critic, Pipeline, critic_objective, critic_phases
from genrun.ranges import NonNegative, PositiveInt


def product_of_marginals(y: Tensor) -> Tensor:
    """Each column of y permuted across the batch on its own: samples of prod_i p(y_i) (Brakel &
    Bengio 2017, sec. 3, resampling), drawn from the global RNG (so a resumed run draws the same)."""
    order = torch.argsort(torch.rand(y.shape, device=y.device), dim=0)
    return torch.gather(y, 0, order)


class IndependencePipeline(Pipeline):
    generative = False  # an encoder: no samples of the data to measure
    loss_kinds = ("adversarial",)
    primary_metric = "loss/g"
    default_metrics = ("independence",)

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss,
        optimizers: Mapping[str, OptimizerFactory],
        outputs: PositiveInt,
        device: torch.device | str = "cpu",
        recon_weight: NonNegative = 1.0,
        n_critic: PositiveInt = 1,
    ) -> None:
        if outputs < 2:
            raise GenrunError(f"model.outputs={outputs}: independence needs at least 2 outputs")
        if not recon_weight >= 0:
            raise GenrunError(f"model.recon_weight={recon_weight}: must be >= 0 (0 turns the decoder off)")
        super().__init__(loss, optimizers, device)
        self.outputs, self.recon_weight = outputs, recon_weight
        standardise = nn.BatchNorm1d(outputs, affine=False)
        self.encoder = self.add_net("encoder", nn.Sequential(encoder, standardise))
        self.decoder = self.add_net("decoder", decoder)
        self.discriminator = self.add_net("discriminator", discriminator)
        self.add_optimizer("encoder", self.encoder)
        self.add_optimizer("decoder", self.decoder)
        self.add_optimizer("discriminator", self.discriminator)
        self.phases = [
            *critic_phases(self.loss, self.discriminator, self.critic_objective, n_critic, self.real_critic),
            Phase("E", ("encoder", "decoder"), self.encoder_objective, fresh_batch=False),
        ]

    def encode(self, x: Tensor) -> Tensor:
        y = self.encoder(x.flatten(1))
        if y.shape[1] != self.outputs:
            raise GenrunError(f"the encoder gives {y.shape[1]} outputs, model.outputs={self.outputs}")
        return y

    def critic_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The critic tells shuffled outputs ("real": the product of marginals) from joint ones."""
        with torch.no_grad():
            y = self.encode(batch["x"])
        return critic_objective(self.loss, self.discriminator, product_of_marginals(y), y)

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        """The critic and shuffled outputs, for a lazy regulariser's phase."""
        with torch.no_grad():
            y = self.encode(batch["x"])
        return self.discriminator, product_of_marginals(y)

    def encoder_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The joint outputs move toward "product of marginals"; the decoder keeps them informative."""
        x = batch["x"].flatten(1)
        y = self.encode(x)
        loss_g = self.loss.g_loss(self.discriminator(y))
        recon = (self.decoder(y).flatten(1) - x).pow(2).mean()
        return loss_g + self.recon_weight * recon, {"loss/g": loss_g, "ica/recon": recon}

    # -- no samples; pictures of the outputs ------------------------------------------------
    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {}

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """The fixed batch's first two mixture coordinates and first two recovered outputs (scatter plots)."""
        return {"mixtures": fixed["x"].flatten(1)[:, :2], "sources": self.recovered_sources(fixed)[:, :2]}

    # -- what metrics read (genrun.metrics.representation) ------------------------------------
    def recovered_sources(self, batch: Batch) -> Tensor:
        """The encoder's standardised outputs of data (eval mode: running statistics)."""
        with self.evaluating():
            return self.encode(batch["x"])
