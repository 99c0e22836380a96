"""Context encoder (Pathak et al. 2016): fills the hole of an image (dataset.task=masked) from its
context, with an encoder-decoder whose bottleneck is a channel-wise fully connected layer
(genrun.nets.context).

Objective (eq. 1-3): L = 0.999 L_rec + 0.001 L_adv. L_rec is the squared error over the hole
and an `overlap` px border of the visible context around it, the border weighted 10x (the
paper's overlapping prediction, which makes the completion blend in); the critic judges
completed images (the input outside the hole, the prediction inside) against real ones. The
generator learns at 10x the critic's rate (`discriminator_lr_scale=0.1` scales the critic's
configured learning rate). `adversarial_weight=0` is the L2-only baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.data.tasks import TaskSpec
from genrun.engine.protocol import OptimizerFactory, Phase
from genrun.losses.adversarial import AdversarialLoss
from genrun.losses.translation import overlap_weights, weighted_l2
from genrun.pipelines.base import Critic, critic_objective
from genrun.pipelines.translation import TranslationPipeline
from genrun.ranges import NonNegative, NonNegativeInt, Positive, PositiveInt


def complete(inputs: Tensor, prediction: Tensor, mask: Tensor) -> Tensor:
    """The input outside the hole, the prediction inside it."""
    m = mask.to(prediction.dtype)
    return inputs.to(prediction.dtype) * (1 - m) + prediction * m


class ContextEncoderPipeline(TranslationPipeline):
    primary_metric = "loss/recon"
    needs_mask = True

    def __init__(self, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module],
                 loss: AdversarialLoss, optimizers: Mapping[str, OptimizerFactory], device: torch.device | str = "cpu",
                 task: TaskSpec | None = None, recon_weight: NonNegative = 0.999, adversarial_weight: NonNegative = 0.001,
                 overlap: NonNegativeInt = 2, overlap_weight: NonNegative = 10.0,
                 discriminator_lr_scale: Positive = 0.1, n_critic: PositiveInt = 1) -> None:
        super().__init__(loss, optimizers, device, task, adversarial_weight, n_critic)
        self.recon_weight, self.overlap, self.overlap_weight = float(recon_weight), overlap, float(overlap_weight)
        self.discriminator_lr_scale = float(discriminator_lr_scale)
        (c_in, size, _), c_out = self.task.input_shape, self.task.channels
        self.generator = self.add_net("generator", generator(in_channels=c_in, out_channels=c_out, size=size))
        self.discriminator = self.add_critic("discriminator", discriminator, c_out)
        self.add_optimizer("generator", self.generator)
        if self.adversarial:
            self.add_optimizer("discriminator", self.discriminator)
            self.scale_learning_rate("discriminator", self.discriminator_lr_scale)
        self.phases = [
            *self.critic_steps(self.discriminator, self.discriminator_objective, self.real_critic),
            Phase("G", ("generator",), self.generator_objective, fresh_batch=False),
        ]

    def output(self, batch: Batch) -> Tensor:
        """The completed image."""
        return complete(batch["input"], self.generator(batch["input"]), batch["mask"])

    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Real images against completed ones."""
        with torch.no_grad():
            fake = self.output(batch)
        return critic_objective(self.loss, self.discriminator, batch["x"], fake)

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        return self.discriminator, batch["x"]

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """recon_weight x the overlap-weighted L2 + adversarial_weight x the adversarial loss of the completion."""
        prediction = self.generator(batch["input"])
        weights = overlap_weights(batch["mask"], self.overlap, self.overlap_weight)
        recon = weighted_l2(prediction, batch["x"], weights)
        total, scalars = self.recon_weight * recon, {"loss/recon": recon}
        if self.adversarial:
            adversarial = self.loss.g_loss(self.discriminator(complete(batch["input"], prediction, batch["mask"])))
            total = total + self.adversarial_weight * adversarial
            scalars["loss/g"] = adversarial
        return total, scalars

    def translation_protocol(self) -> dict:
        return {**super().translation_protocol(), "recon_weight": self.recon_weight, "overlap": self.overlap,
                "overlap_weight": self.overlap_weight,
                "discriminator_lr_scale": self.discriminator_lr_scale if self.adversarial else None}
