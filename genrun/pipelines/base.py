"""The protocol between the engine and a model family.

A family declares its training step as `phases`: which optimizer roles each phase updates,
what it minimises, how often it repeats (n_critic), whether it draws a fresh batch, and what
runs after its optimizer step (WGAN clipping, EMA). The engine (genrun.engine.updates) runs
them: no family calls backward() or an optimizer's step, so precision, several processes and
gradient clipping are the engine's alone (it also steps the LR schedules after each step).
The loop calls `previews`; the run around it draws the fixed preview inputs with `sample_noise`, saves and
restores `state_dict`/`load_state_dict`, and ends with `sample` (2D mode metrics) and
`evaluate`; the builder reads `loss_kinds` and `primary_metric` and adds LR schedules with
`add_schedulers`. A family never sees a file, a writer or a progress bar.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler

from genrun.data.bundle import Batch, DataBundle
from genrun.errors import GenrunError

OptimizerFactory = Callable[..., torch.optim.Optimizer]
Noise = dict[str, Tensor]
EMA_SUFFIX = "_ema"
CALIBRATION_BATCHES, CALIBRATION_SIZE = 8, 256  # inputs that re-estimate an EMA copy's BatchNorm statistics
Objective = Callable[[Batch], tuple[Tensor, dict[str, Tensor]]]


@dataclass
class Phase:
    """One update of a training step (stylegan2-ada's Gmain/Dmain idea): the optimizer `roles`
    it steps minimise `objective(batch)` = (loss, scalars to log), `repeats` times in a row,
    each on a fresh batch or on the step's last one; `after` runs after each optimizer step."""

    name: str
    roles: tuple[str, ...]
    objective: Objective
    repeats: int = 1
    fresh_batch: bool = True
    after: Callable[[], None] | None = None


class Pipeline:
    """Base of every family: owns its networks (by name) and optimizers (by role)."""

    loss_kinds: ClassVar[tuple[str, ...]] = ()
    primary_metric: ClassVar[str] = ""
    generative: ClassVar[bool] = True  # `sample` draws from the model of the data (sample-quality metrics apply)

    def __init__(
        self, loss: Any, optimizers: Mapping[str, OptimizerFactory], device: torch.device | str, ema: float = 0.0
    ) -> None:
        if getattr(loss, "kind", None) not in self.loss_kinds:
            raise GenrunError(
                f"{type(self).__name__} trains with {'/'.join(self.loss_kinds)} objectives, "
                f"not {type(loss).__name__} ({getattr(loss, 'kind', '?')})"
            )
        self.loss = loss
        self.device = torch.device(device)
        self.optimizer_factories = optimizers
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, LRScheduler] = {}
        if not 0.0 <= ema < 1.0:
            raise GenrunError(f"ema={ema}: the EMA decay must be in [0, 1) (0 = off, e.g. 0.999)")
        self.ema_decay = float(ema)
        self.ema_sources: dict[str, str] = {}  # EMA net name -> the net it averages
        self.ema_statistics_fresh = False  # EMA copies' BatchNorm statistics fit their weights
        self.use_ema = True  # sample from the EMA copies when there are any (genrun-sample ema=false unsets it)
        self.phases: list[Phase] = []  # the training step, in order (set by each family)

    # -- building -------------------------------------------------------------------------
    def add_net(self, name: str, net: nn.Module) -> nn.Module:
        """Register a network (moved to the device) so it is saved, restored and toggled."""
        self.nets[name] = net.to(self.device)
        return self.nets[name]

    def add_optimizer(self, role: str, *nets: nn.Module) -> torch.optim.Optimizer:
        """Build the optimizer of `role` (a key of the `optimizer` config group) over `nets`."""
        if role not in self.optimizer_factories:
            valid = ", ".join(k for k, v in self.optimizer_factories.items() if callable(v))
            raise GenrunError(f"the optimizer config has no '{role}' entry (roles there: {valid})")
        params = [p for net in nets for p in net.parameters()]
        self.optimizers[role] = self.optimizer_factories[role](params)
        return self.optimizers[role]

    def add_schedulers(self, factory: Callable[[torch.optim.Optimizer], LRScheduler]) -> None:
        """One learning-rate schedule per optimizer role (the `scheduler` config group), built
        after the family made its optimizers, so no family has to know about schedules."""
        self.schedulers = {role: factory(opt) for role, opt in self.optimizers.items()}

    def add_ema(self, name: str) -> nn.Module | None:
        """Average net `name`'s weights over training (Karras et al. 2018; Yazici et al. 2019).

        When the pipeline's `ema` decay is > 0 this registers a frozen copy as the net
        `<name>_ema` (saved and restored like any net) and returns it; `update_ema` must then
        run after each update of `name` (the end of `step`), and `sampling_net(name)` picks
        the copy. With `ema` = 0 it does nothing and returns None.
        """
        if name not in self.nets:
            raise GenrunError(f"add_ema({name!r}): no such network; this model has {', '.join(self.nets)}")
        if self.ema_decay == 0.0:
            return None
        self.ema_sources[name + EMA_SUFFIX] = name
        return self.add_net(name + EMA_SUFFIX, copy.deepcopy(self.nets[name]).requires_grad_(False))

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * weights (one fused op per net)."""
        for ema_name, name in self.ema_sources.items():
            ema, net = self.nets[ema_name], self.nets[name]
            torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1.0 - self.ema_decay)
        self.ema_statistics_fresh = False

    @torch.no_grad()
    def refresh_ema_statistics(self) -> None:
        """Re-estimate the BatchNorm statistics of each EMA copy on its own activations.

        The live net's running statistics belong to the live weights, not to their average
        (BigGAN's "standing statistics", Brock et al. 2019, sec. 3.1): the copy runs in train
        mode over CALIBRATION_BATCHES batches of inputs from a fixed seed with a cumulative
        average, so the result depends only on its weights (resume stays bit-exact) and the
        global RNG is untouched. Runs before sampling and saving, only after the copy changed.
        """
        if self.ema_statistics_fresh:
            return
        for ema_name, name in self.ema_sources.items():
            net = self.nets[ema_name]
            norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if not norms:
                continue
            generator = torch.Generator(self.device).manual_seed(0)
            momenta, training = [m.momentum for m in norms], net.training
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
            net.train()
            for _ in range(CALIBRATION_BATCHES):
                net(*self.calibration_inputs(name, CALIBRATION_SIZE, generator))
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            net.train(training)
        self.ema_statistics_fresh = True

    def calibration_inputs(self, name: str, n: int, generator: torch.Generator) -> tuple[Tensor, ...]:
        """Inputs of net `name` for `n` samples, drawn from `generator` (to re-estimate its EMA
        copy's BatchNorm statistics); families whose averaged nets have BatchNorm define it."""
        raise GenrunError(f"{type(self).__name__} keeps an EMA of '{name}', which has BatchNorm, "
                          "but defines no calibration_inputs for it")

    def sampling_net(self, name: str) -> nn.Module:
        """The net samples come from: the EMA copy of `name` when there is one (and `use_ema`)."""
        ema_name = name + EMA_SUFFIX
        if self.use_ema and ema_name in self.ema_sources:
            self.refresh_ema_statistics()
            return self.nets[ema_name]
        return self.nets[name]

    # -- the protocol -----------------------------------------------------------------------
    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Noise:
        """The inputs of `generate` for n samples, drawn from `generator` (reproducible grids)."""
        raise NotImplementedError

    def generate(self, noise: Noise) -> Tensor:
        """Samples in data space from `sample_noise` inputs (eval mode, no gradients)."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.generate(self.sample_noise(n, generator))

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Pictures of the model's state, by name, from fixed inputs that never change in a run.

        `fixed` holds this family's `sample_noise` plus a fixed real batch under "x" (and "y"
        when the data has labels). "samples" is written as samples/step_<N>.png, any other
        name (e.g. "reconstructions", "classes") as samples/<name>_step_<N>.png.
        """
        return {"samples": self.generate(fixed)}

    def evaluate(self, data: DataBundle, generator: torch.Generator) -> dict[str, float]:
        """Family metrics at the end of a run (e.g. held-out reconstruction error); none by default."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Every network and optimizer: all a checkpoint needs from the family."""
        self.refresh_ema_statistics()
        return {
            "nets": {name: net.state_dict() for name, net in self.nets.items()},
            "optimizers": {role: opt.state_dict() for role, opt in self.optimizers.items()},
            "schedulers": {role: sched.state_dict() for role, sched in self.schedulers.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any], optimizers: bool = True) -> None:
        """Restore `state_dict`; `trainer.ema` may change on resume (an EMA starts from the saved net)."""
        nets, opts = self._with_ema_of_this_run(state["nets"]), state.get("optimizers", {})
        if set(nets) != set(self.nets) or (optimizers and set(opts) != set(self.optimizers)):
            raise GenrunError(
                f"checkpoint holds networks {sorted(nets)} / optimizers {sorted(opts)}, "
                f"this model has {sorted(self.nets)} / {sorted(self.optimizers)}"
            )
        for name, net in self.nets.items():
            net.load_state_dict(nets[name])
        self.ema_statistics_fresh = False
        if optimizers:
            for role, opt in self.optimizers.items():
                opt.load_state_dict(opts[role])
            scheds = state.get("schedulers", {})
            if set(scheds) != set(self.schedulers):
                raise GenrunError(f"checkpoint holds learning-rate schedules for {sorted(scheds)}, "
                                  f"this run has them for {sorted(self.schedulers)}")
            for role, sched in self.schedulers.items():
                sched.load_state_dict(scheds[role])

    def _with_ema_of_this_run(self, nets: Mapping[str, Any]) -> dict[str, Any]:
        """Saved nets, minus EMA copies this pipeline no longer keeps, plus ones it now starts."""
        out = {k: v for k, v in nets.items()
               if not (k.endswith(EMA_SUFFIX) and k not in self.nets and k[: -len(EMA_SUFFIX)] in self.nets)}
        for ema_name, name in self.ema_sources.items():
            if ema_name not in out and name in out:
                out[ema_name] = out[name]
        return out

    # -- helpers for families ---------------------------------------------------------------
    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode and no gradients (BatchNorm running stats untouched), then back to train."""
        modes = {name: net.training for name, net in self.nets.items()}
        self.nets.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            for name, net in self.nets.items():
                net.train(modes[name])

    def gaussian(self, *shape: int, generator: torch.Generator | None = None) -> Tensor:
        """N(0, I) noise on the family's device (from `generator` when one is given)."""
        return torch.randn(*shape, device=self.device, generator=generator)


def critic_objective(loss: Any, critic: Callable[[Tensor], Tensor], real: Tensor,
                     fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """An adversarial critic's loss plus the objective's regularisers (already weighted), and the
    scalars to log. `critic` maps inputs to logits (it may close over conditioning, e.g. labels)."""
    loss_d = loss.d_loss(critic(real), critic(fake))
    regs = loss.regularizers(critic, real, fake)
    return sum(regs.values(), start=loss_d), {"loss/d": loss_d, **regs}


def critic_phase(loss: Any, net: nn.Module, objective: Objective, repeats: int) -> Phase:
    """The critic's phase of an adversarial family: role `discriminator`, `repeats` (n_critic)
    updates on fresh batches, then the objective's post-step hook on `net` (WGAN clipping)."""
    return Phase("D", ("discriminator",), objective, repeats=repeats, after=lambda: loss.after_critic_step(net))
