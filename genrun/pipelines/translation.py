"""What the translation families share (pix2pix, CycleGAN, SRGAN, context encoder).

A translation family maps the `input` of a batch to an image of the target domain (`x`), the
batches of a translation dataset (genrun.data.pairs). It reads the task's shapes from
`dataset.translation` (a genrun.data.tasks.TaskSpec: its `model.task`) and sizes its networks
from them. It is measured through `translate(batch)`: the evaluator's samples are its outputs on
held-out inputs (so FID, KID, ... compare them with the target domain, with the real-vs-real
floor), `paired` compares them with their targets (PSNR, SSIM, L1) and `label_preservation`
classifies them. It draws no noise: `sample` is an error that says to translate instead
(genrun-sample input=...), and its preview is a grid of input | output | target rows.
`adversarial_weight=0` leaves the critic out (pix2pix's L1-only and context encoder's L2-only
ablations, SRResNet).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.data.tasks import TaskSpec
from genrun.engine.protocol import Noise, Objective, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.adversarial import AdversarialLoss
from genrun.pipelines.base import Critic, Pipeline, critic_phases
from genrun.ranges import NonNegative, PositiveInt


class TranslationPipeline(Pipeline):
    """Base of the translation families: the task, `translate`, previews and the critic's phases."""

    loss_kinds = ("adversarial",)
    primary_metric = "loss/g"
    default_metrics = ("paired",)
    needs_pairs: ClassVar[bool] = True  # learns from (input, target) pairs
    same_size: ClassVar[bool] = True  # output and input share a size (all but SRGAN)
    needs_mask: ClassVar[bool] = False  # fills the holes of task=masked

    def __init__(self, loss: AdversarialLoss, optimizers: Mapping[str, OptimizerFactory],
                 device: torch.device | str = "cpu", task: TaskSpec | None = None,
                 adversarial_weight: NonNegative = 1.0, n_critic: PositiveInt = 1) -> None:
        super().__init__(loss, optimizers, device)
        self.task = self.check_task(task)
        self.adversarial_weight, self.n_critic = float(adversarial_weight), n_critic
        self.adversarial = self.adversarial_weight > 0

    def check_task(self, task: TaskSpec | None) -> TaskSpec:
        """The family's needs against the dataset's task: one line each, before any training."""
        if task is None:
            raise GenrunError("it translates images: use a translation dataset (dataset=paired, unpaired or "
                              "paired_folders); this dataset has no inputs")
        if self.needs_pairs and not task.paired:
            raise GenrunError("it learns from pairs, and dataset=unpaired has none: use model=cyclegan, or "
                              "dataset=paired")
        if self.needs_mask and not task.masked:
            raise GenrunError(f"it fills holes: it needs dataset.task=masked, not {task.task}")
        if self.same_size and task.input_shape[1:] != task.target_shape[1:]:
            raise GenrunError(f"it maps images to images of the same size, and dataset.task={task.task} gives "
                              f"{task.input_size} px inputs for {task.image_size} px targets: use model=srgan "
                              "(or srresnet) for super-resolution")
        return task

    # -- building ---------------------------------------------------------------------------
    def add_critic(self, name: str, factory: Callable[..., nn.Module], in_channels: int) -> nn.Module | None:
        """A critic of the target's size when the adversarial term is on, else None."""
        if not self.adversarial:
            return None
        return self.add_net(name, factory(in_channels=in_channels, size=self.task.image_size))

    def scale_learning_rate(self, role: str, factor: float) -> None:
        """Role `role` learns at `factor` x its configured rate (e.g. the context encoder's critic
        at a tenth of the generator's, Pathak et al. 2016); set before the schedules are built."""
        if role in self.optimizers:
            for group in self.optimizers[role].param_groups:
                group["lr"] *= factor

    def critic_steps(self, critic: nn.Module, objective: Objective,
                     real_critic: Callable[[Batch], tuple[Critic, Tensor]]) -> list[Phase]:
        """The critic's phases (n_critic updates, fresh batches; a lazy R1 of its own) when the
        adversarial term is on."""
        if not self.adversarial:
            return []
        return critic_phases(self.loss, critic, objective, self.n_critic, real_critic)

    # -- what the engine and metrics read ------------------------------------------------------
    def output(self, batch: Batch) -> Tensor:
        """The translation of batch["input"] in training mode (with gradients): each family's own."""
        raise NotImplementedError

    def translate(self, batch: Batch) -> Tensor:
        """The outputs for batch["input"] in eval mode, without gradients (metrics, samples)."""
        with self.evaluating():
            return self.output(batch)

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        return {}  # no noise: previews translate the fixed real batch

    def generate(self, noise: Noise) -> Tensor:
        if "input" not in noise:
            raise GenrunError(f"{type(self).__name__} translates inputs; it has no samples of its own")
        return self.translate(noise)

    def sample(self, n: int, rng: torch.Generator | None = None) -> Tensor:
        raise GenrunError("a translation model draws no samples of its own: translate images with "
                          "genrun-sample run=RUN input=test (a split of its dataset) or input=FOLDER")

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Rows of inputs, their outputs and their targets (paired data), or inputs above outputs."""
        target = fixed["x"] if self.task.paired else None
        return {"samples": translation_rows(fixed["input"], self.translate(fixed), target)}

    def translation_protocol(self) -> dict[str, Any]:
        """How this family trains, for the protocol beside its numbers."""
        return {"task": self.task.task, "input_shape": list(self.task.input_shape),
                "target_shape": list(self.task.target_shape), "adversarial_weight": self.adversarial_weight}


# -- pictures -------------------------------------------------------------------------------------
def shown_like(x: Tensor, like: Tensor) -> Tensor:
    """Images made comparable with `like` for a picture: nearest-neighbour resized to its size, grey
    repeated to its colour channels."""
    if x.shape[-1] != like.shape[-1]:
        x = F.interpolate(x.float(), size=like.shape[-2:], mode="nearest")
    if x.shape[1] != like.shape[1]:
        x = x.expand(-1, like.shape[1], -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
    return x.float()


def translation_rows(inputs: Tensor, outputs: Tensor, targets: Tensor | None = None) -> Tensor:
    """One picture of rows: inputs, their outputs (and targets) below, `side` images per row, laid
    out so that the square grid of genrun.engine.images shows them as such rows."""
    rows = [shown_like(r, outputs) for r in (inputs, outputs, targets) if r is not None]
    k, n = len(rows), min(len(r) for r in rows)
    groups = max(1, math.isqrt(n // k))  # k * groups rows of side = k * groups images each
    side = k * groups
    if side > n:
        side, groups = n, 1
    return torch.cat([r[i:i + side].cpu() for i in range(0, groups * side, side) for r in rows])
