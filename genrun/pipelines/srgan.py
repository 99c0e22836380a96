"""SRGAN and SRResNet (Ledig et al. 2017): super-resolution by a residual generator with sub-pixel
up-sampling (x2, x4), trained on a content loss on a feature network (genrun.losses.content:
pixel MSE, genrun's classifier, or VGG-19 from a local file) plus 1e-3 x the adversarial loss
(eq. 3: l^SR = l_X + 10^-3 l_Gen), against the paper's strided critic; any `loss=`.

As in the paper, SRGAN starts from an SRResNet: its first `pretrain_steps` steps are the
content-only phase "SRResNet", then the critic's and the generator's phases run (each phase runs
on its own range of steps, so a resumed run switches at the same step). `model=srresnet` is the
content-only model alone (`adversarial_weight=0`): the baseline that shows what the adversarial
term adds (a higher PSNR, a worse perceptual score, in the paper).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.data.tasks import TaskSpec
from genrun.engine.protocol import OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.losses.content import Content
from genrun.pipelines.base import Critic, critic_objective
from genrun.pipelines.translation import TranslationPipeline
from genrun.ranges import NonNegative, NonNegativeInt, PositiveInt


@dataclass
class StepRange(Phase):
    """A phase that runs on steps (after, until] only (until None: to the end), and on every
    `every`-th of them."""

    after_step: int = 0
    until: int | None = None

    def runs_at(self, step: int) -> bool:
        inside = step > self.after_step and (self.until is None or step <= self.until)
        return inside and super().runs_at(step)


def within(phase: Phase, after_step: int = 0, until: int | None = None) -> StepRange:
    """`phase` restricted to steps (after_step, until]."""
    return StepRange(**{f.name: getattr(phase, f.name) for f in fields(phase)}, after_step=after_step, until=until)


class SRGANPipeline(TranslationPipeline):
    primary_metric = "loss/content"
    same_size = False

    def __init__(self, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module],
                 content_loss: Content, loss: AdversarialLoss, optimizers: Mapping[str, OptimizerFactory],
                 device: torch.device | str = "cpu", task: TaskSpec | None = None,
                 adversarial_weight: NonNegative = 1e-3, pretrain_steps: NonNegativeInt = 0,
                 n_critic: PositiveInt = 1) -> None:
        super().__init__(loss, optimizers, device, task, adversarial_weight, n_critic)
        if self.task.task not in ("lowres", "folders"):
            raise GenrunError(f"it super-resolves images: it needs dataset.task=lowres, not {self.task.task}")
        scale = self.task.image_size // self.task.input_size
        if scale * self.task.input_size != self.task.image_size:
            raise GenrunError(f"it up-samples by a whole factor: {self.task.input_size} px inputs do not divide "
                              f"{self.task.image_size} px targets")
        self.content, self.pretrain_steps = content_loss, int(pretrain_steps)
        c_in, c_out = self.task.input_channels, self.task.channels
        self.generator = self.add_net("generator", generator(in_channels=c_in, out_channels=c_out, scale=scale))
        self.add_optimizer("generator", self.generator)
        self.discriminator = self.add_critic("discriminator", discriminator, c_out)
        if not self.adversarial:
            self.phases = [Phase("G", ("generator",), self.content_objective)]
            return
        self.add_optimizer("discriminator", self.discriminator)
        start = self.pretrain_steps
        pretraining = [within(Phase("SRResNet", ("generator",), self.content_objective), until=start)] if start else []
        self.phases = [
            *pretraining,
            *(within(p, after_step=start) for p in self.critic_steps(self.discriminator, self.discriminator_objective,
                                                                    self.real_critic)),
            within(Phase("G", ("generator",), self.generator_objective, fresh_batch=False), after_step=start),
        ]

    def output(self, batch: Batch) -> Tensor:
        return self.generator(batch["input"])

    def content_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """SRResNet: the content loss alone."""
        content = self.content(self.generator(batch["input"]), batch["x"])
        return content, {"loss/content": content}

    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            fake = self.generator(batch["input"])
        return critic_objective(self.loss, self.discriminator, batch["x"], fake)

    def real_critic(self, batch: Batch) -> tuple[Critic, Tensor]:
        return self.discriminator, batch["x"]

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """content + adversarial_weight x the adversarial loss (eq. 3)."""
        fake = self.generator(batch["input"])
        content = self.content(fake, batch["x"])
        adversarial = self.loss.g_loss(self.discriminator(fake))
        return content + self.adversarial_weight * adversarial, {"loss/content": content, "loss/g": adversarial}

    def translation_protocol(self) -> dict:
        return {**super().translation_protocol(), "content": self.content.describe(),
                "pretrain_steps": self.pretrain_steps if self.adversarial else None}
