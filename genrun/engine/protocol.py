"""The protocol between the engine and a model family, owned by the engine.

A family declares its training step as `phases`: which optimizer roles each phase updates,
what it minimises, how often it repeats in a row (`repeats`, e.g. n_critic), on which steps it
runs at all (`every`, e.g. a lazy regulariser), whether it draws a fresh batch, and what runs
after its optimizer step (WGAN clipping, EMA). The engine (genrun.engine.updates) runs them: no
family calls backward() or an optimizer's step, so precision, several processes and gradient
clipping are the engine's alone. The loop draws `previews` from fixed inputs the run made with
`sample_noise`; the run saves and restores `state_dict`/`load_state_dict`.

Nothing here knows a family: families (genrun.pipelines) import this module, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler

from genrun.data.bundle import Batch

Noise = dict[str, Tensor]
Objective = Callable[[Batch], tuple[Tensor, dict[str, Tensor]]]
OptimizerFactory = Callable[..., torch.optim.Optimizer]


@dataclass
class Phase:
    """One update of a training step (stylegan2-ada's Gmain/Dmain/Dreg idea): the optimizer
    `roles` it steps minimise `objective(batch)` = (loss, scalars to log), `repeats` times in a
    row, each on a fresh batch or on the step's last one, on the steps divisible by `every`
    (1: every step; k: a lazy regulariser, whose objective carries the factor k itself); `after`
    runs after each optimizer step."""

    name: str
    roles: tuple[str, ...]
    objective: Objective
    repeats: int = 1
    fresh_batch: bool = True
    after: Callable[[], None] | None = None
    every: int = 1

    def runs_at(self, step: int) -> bool:
        """Whether this phase updates at (1-based) training step `step`."""
        return step % self.every == 0


@runtime_checkable
class Family(Protocol):
    """What the engine reads of a model family (genrun.pipelines.base.Pipeline implements it)."""

    device: torch.device
    nets: nn.ModuleDict  # every network, by name: saved, restored, frozen outside its phases
    optimizers: dict[str, torch.optim.Optimizer]  # by role (a key of the `optimizer` config)
    schedulers: dict[str, LRScheduler]  # by role; stepped once per training step
    phases: list[Phase]  # the training step, in order

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        """The inputs of `previews` (and of sampling) for n samples, drawn from `rng`."""

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Pictures of the model's state, by name, from inputs that never change in a run."""

    def state_dict(self) -> dict[str, Any]:
        """Every network, optimizer and schedule: all a checkpoint needs from the family."""

    def load_state_dict(self, state: Mapping[str, Any], optimizers: bool = True) -> None:
        """Restore `state_dict` (without the optimizers when only sampling)."""
