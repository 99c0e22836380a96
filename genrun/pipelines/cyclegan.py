"""CycleGAN (Zhu et al. 2017): two generators G: A -> B and F: B -> A, two critics D_B and D_A,
from unpaired images of the two domains (batch keys `input`: A, `x`: B).

Objective (eq. 3 and sec. 5.2): L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc + identity x lambda
L_identity, lambda = 10, identity = 0.5 (the identity term needs domains of one shape: it is
left out, with a log line, when A and B differ in channels). LSGAN by default, as in the paper,
any adversarial loss of `loss=`. A step is the generators' phase (both, one optimizer role
`generator`), then the critics' (both, role `discriminator`, on the same batch, their objective
halved as in the paper), which judge generated images drawn from a history pool of 50 per
critic (genrun.nets.pool), not only the newest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.data.tasks import TaskSpec
from genrun.engine.protocol import OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.losses.translation import cycle_consistency, identity_mapping
from genrun.nets.pool import ImagePool
from genrun.pipelines.base import critic_objective
from genrun.pipelines.translation import TranslationPipeline, translation_rows
from genrun.ranges import NonNegative, NonNegativeInt, PositiveInt

log = logging.getLogger("genrun")


class CycleGANPipeline(TranslationPipeline):
    primary_metric = "loss/cycle"
    default_metrics = ("paired", "cycle")
    needs_pairs = False

    def __init__(self, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module],
                 loss: AdversarialLoss, optimizers: Mapping[str, OptimizerFactory], device: torch.device | str = "cpu",
                 task: TaskSpec | None = None, cycle_weight: NonNegative = 10.0, identity_weight: NonNegative = 0.5,
                 pool_size: NonNegativeInt = 50, adversarial_weight: NonNegative = 1.0, n_critic: PositiveInt = 1) -> None:
        super().__init__(loss, optimizers, device, task, adversarial_weight, n_critic)
        if getattr(loss, "lazy_every", 1) > 1:
            raise GenrunError(f"loss.r1_every={loss.r1_every}: a lazy R1 phase is not supported by model=cyclegan "
                              "(two critics); use loss.r1_every=1")
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)
        if self.identity_weight > 0 and self.task.input_shape != self.task.target_shape:
            log.info("model.identity_weight=%s: left out, the domains differ in shape (%s and %s)", identity_weight,
                     list(self.task.input_shape), list(self.task.target_shape))
            self.identity_weight = 0.0
        (c_a, size, _), c_b = self.task.input_shape, self.task.channels
        self.generator = self.add_net("generator", generator(in_channels=c_a, out_channels=c_b, size=size))
        self.generator_back = self.add_net("generator_back", generator(in_channels=c_b, out_channels=c_a, size=size))
        self.add_optimizer("generator", self.generator, self.generator_back)
        self.fakes: tuple[Tensor, Tensor] | None = None  # the generators' phase's outputs, for the critics'
        phases = [Phase("G", ("generator",), self.generator_objective)]
        if self.adversarial:
            self.discriminator = self.add_critic("discriminator", discriminator, c_b)  # D_B
            self.discriminator_back = self.add_critic("discriminator_back", discriminator, c_a)  # D_A
            self.pool = self.add_net("pool", ImagePool(self.task.target_shape, pool_size))
            self.pool_back = self.add_net("pool_back", ImagePool(self.task.input_shape, pool_size))
            critics = nn.ModuleList([self.discriminator, self.discriminator_back])
            self.add_optimizer("discriminator", critics)
            phases.append(Phase("D", ("discriminator",), self.discriminator_objective, repeats=n_critic,
                                fresh_batch=False, after=lambda: self.loss.after_critic_step(critics)))
        self.phases = phases

    def output(self, batch: Batch) -> Tensor:
        return self.generator(batch["input"])

    def generator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Adversarial terms both ways, cycle consistency both ways, identity (same-shape domains)."""
        a, b = batch["input"], batch["x"]
        fake_b, fake_a = self.generator(a), self.generator_back(b)
        cycle = cycle_consistency(a, self.generator_back(fake_b), b, self.generator(fake_a))
        total, scalars = self.cycle_weight * cycle, {"loss/cycle": cycle}
        if self.identity_weight > 0:
            identity = identity_mapping(a, self.generator_back(a), b, self.generator(b))
            total = total + self.identity_weight * self.cycle_weight * identity
            scalars["loss/identity"] = identity
        if self.adversarial:
            adversarial = self.loss.g_loss(self.discriminator(fake_b)) + self.loss.g_loss(self.discriminator_back(fake_a))
            total = total + self.adversarial_weight * adversarial
            scalars["loss/g"] = adversarial
            self.fakes = (fake_b.detach(), fake_a.detach())
        return total, scalars

    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Each critic: real images of its domain against pooled outputs of the generators' phase,
        halved (the paper slows the critics down so)."""
        if self.fakes is None:
            raise GenrunError("the critics' phase ran before the generators' (CycleGAN's step is G, then D)")
        fake_b, fake_a = self.fakes
        loss_b, terms_b = critic_objective(self.loss, self.discriminator, batch["x"], self.pool.query(fake_b))
        loss_a, terms_a = critic_objective(self.loss, self.discriminator_back, batch["input"],
                                           self.pool_back.query(fake_a))
        scalars = {**{k: v for k, v in terms_b.items() if k != "loss/d"}, "loss/d": terms_b["loss/d"],
                   "loss/d_back": terms_a["loss/d"]}
        return 0.5 * (loss_b + loss_a), scalars

    # -- what metrics read ------------------------------------------------------------------------
    def translate_back(self, batch: Batch) -> Tensor:
        """F(x): target-domain images mapped to the input domain (eval mode)."""
        with self.evaluating():
            return self.generator_back(batch["x"])

    def cycle_errors(self, batch: Batch) -> Tensor:
        """Per example: mean |F(G(a)) - a| and mean |G(F(b)) - b|, in data units ([N, 2])."""
        with self.evaluating():
            a, b = batch["input"], batch["x"]
            a_back, b_back = self.generator_back(self.generator(a)), self.generator(self.generator_back(b))
            return torch.stack([(a_back - a).abs().flatten(1).mean(1), (b_back - b).abs().flatten(1).mean(1)], 1)

    def previews(self, fixed: Batch) -> dict[str, Tensor]:
        """A -> B -> A rows, and B -> A -> B rows."""
        with self.evaluating():
            a, b = fixed["input"], fixed["x"]
            fake_b, fake_a = self.generator(a), self.generator_back(b)
            return {"samples": translation_rows(a, fake_b, self.generator_back(fake_b)),
                    "back": translation_rows(b, fake_a, self.generator(fake_a))}

    def translation_protocol(self) -> dict:
        return {**super().translation_protocol(), "cycle_weight": self.cycle_weight,
                "identity_weight": self.identity_weight, "pool_size": self.pool.size if self.adversarial else None}
