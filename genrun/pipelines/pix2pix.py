"""pix2pix (Isola et al. 2017): a U-Net maps the input to the target, against a PatchGAN that
judges (input, image) pairs, plus lambda x L1 to the target (eq. 4: G* = arg min_G max_D
L_cGAN(G, D) + lambda L_L1(G), lambda = 100); any adversarial objective of `loss=`.

A step is the critic's phase (n_critic updates on fresh batches: real pairs against pairs with
the generator's outputs), then the generator's (adversarial + lambda L1) on the last batch.
`adversarial_weight=0` is the paper's L1-only ablation (no critic). The U-Net's dropout is its
only noise (training only: outputs are translated in eval mode, deterministic).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.data.tasks import TaskSpec
from genrun.engine.protocol import OptimizerFactory, Phase
from genrun.losses.adversarial import AdversarialLoss
from genrun.losses.translation import l1
from genrun.pipelines.base import Critic, critic_objective
from genrun.pipelines.translation import TranslationPipeline
from genrun.ranges import NonNegative, PositiveInt


class Pix2PixPipeline(TranslationPipeline):
    def __init__(self, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module],
                 loss: AdversarialLoss, optimizers: Mapping[str, OptimizerFactory], device: torch.device | str = "cpu",
                 task: TaskSpec | None = None, l1_weight: NonNegative = 100.0, adversarial_weight: NonNegative = 1.0,
                 n_critic: PositiveInt = 1) -> None:
        super().__init__(loss, optimizers, device, task, adversarial_weight, n_critic)
        self.l1_weight = float(l1_weight)
        (c_in, size, _), c_out = self.task.input_shape, self.task.channels
        self.generator = self.add_net("generator", generator(in_channels=c_in, out_channels=c_out, size=size))
        self.discriminator = self.add_critic("discriminator", discriminator, c_in + c_out)
        self.add_optimizer("generator", self.generator)
        if self.adversarial:
            self.add_optimizer("discriminator", self.discriminator)
        self.phases = [
            *self.critic_steps(self.discriminator, self.discriminator_objective, self.real_critic),
            Phase("G", ("generator",), self.generator_objective, fresh_batch=False),
        ]

    def output(self, batch: Batch) -> Tensor:
        return self.generator(batch["input"])

    def pair_critic(self, inputs: Tensor) -> Critic:
        """The critic of (input, image) pairs, the input given: images -> patch logits."""
        return lambda images: self.discriminator(torch.cat([inputs, images.to(inputs.dtype)], 1))

    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Real pairs (input, target) against (input, G(input))."""
        with torch.no_grad():
            fake = self.generator(batch["input"])
        return critic_objective(self.loss, self.pair_critic(batch["input"]), batch["x"], fake)

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        return self.pair_critic(batch["input"]), batch["x"]

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """adversarial_weight x L_cGAN + l1_weight x ||target - G(input)||_1."""
        fake = self.generator(batch["input"])
        recon = l1(fake, batch["x"])
        scalars = {"loss/l1": recon}
        total = self.l1_weight * recon
        if self.adversarial:
            adversarial = self.loss.g_loss(self.pair_critic(batch["input"])(fake))
            total = total + self.adversarial_weight * adversarial
            scalars["loss/g"] = adversarial
        return total, scalars

    def translation_protocol(self) -> dict:
        critic = getattr(self.discriminator, "receptive_field", None)
        return {**super().translation_protocol(), "l1_weight": self.l1_weight,
                "generator_depth": getattr(self.generator, "depth", None), "critic_receptive_field": critic}
