"""The base class of every model family: networks by name, optimizers by role, EMA copies.

A family implements the engine's protocol (genrun.engine.protocol: its `phases`, `sample_noise`,
`previews`, `state_dict`) and, for sampling and metrics, `generate`; this base gives it what all
families share: building and registering networks and optimizers (the builder adds LR schedules
with `add_schedulers`), EMA copies of networks for sampling, checkpoint state, and eval mode.
What a family can be measured by is a method a metric looks for (genrun.metrics: e.g. `codes`
for linear probes, `reconstruct`, `elbo_per_example`); `default_metrics` names the ones
`metrics=auto` adds. A family never sees a file, a writer or a progress bar.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler

from genrun.engine.protocol import Noise, Objective, OptimizerFactory, Phase
from genrun.errors import GenrunError

EMA_SUFFIX = "_ema"
CALIBRATION_BATCHES, CALIBRATION_SIZE = 8, 256  # inputs that re-estimate an EMA copy's BatchNorm statistics
Critic = Callable[[Tensor], Tensor]


class Pipeline:
    """Base of every family: owns its networks (by name) and optimizers (by role)."""

    loss_kinds: ClassVar[tuple[str, ...]] = ()  # the objective kinds it trains with (checked by genrun.build)
    primary_metric: ClassVar[str] = ""
    generative: ClassVar[bool] = True  # `sample` draws from the model of the data (sample-quality metrics apply)
    default_metrics: ClassVar[tuple[str, ...]] = ()  # its own metrics (configs/metrics/) that metrics=auto adds

    def __init__(
        self, loss: Any, optimizers: Mapping[str, OptimizerFactory], device: torch.device | str, ema: float = 0.0
    ) -> None:
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
        self.inputs_need_gradients = False  # see `differentiable`

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
        run after each update of `name` (as the after-hook of the phase that steps it), and
        `sampling_net(name)` picks the copy. With `ema` = 0 it does nothing and returns None.
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
            rng = torch.Generator(self.device).manual_seed(0)
            momenta, training = [m.momentum for m in norms], net.training
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
            net.train()
            for _ in range(CALIBRATION_BATCHES):
                net(*self.calibration_inputs(name, CALIBRATION_SIZE, rng))
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            net.train(training)
        self.ema_statistics_fresh = True

    def calibration_inputs(self, name: str, n: int, rng: torch.Generator) -> tuple[Tensor, ...]:
        """Inputs of net `name` for `n` samples, drawn from `rng` (to re-estimate its EMA
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
    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        """The inputs of `generate` for n samples, drawn from `rng` (reproducible grids)."""
        raise NotImplementedError

    def generate(self, noise: Noise) -> Tensor:
        """Samples in data space from `sample_noise` inputs (eval mode, no gradients)."""
        raise NotImplementedError

    def sample(self, n: int, rng: torch.Generator | None = None) -> Tensor:
        return self.generate(self.sample_noise(n, rng))

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """Pictures of the model's state, by name, from fixed inputs that never change in a run.

        `fixed` holds this family's `sample_noise` plus a fixed real batch under "x" (and "y"
        when the data has labels). "samples" is written as samples/step_<N>.png, any other
        name (e.g. "reconstructions", "classes") as samples/<name>_step_<N>.png.
        """
        return {"samples": self.generate(fixed)}

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
        """Eval mode and no gradients (BatchNorm running stats untouched), then back to train;
        inside `differentiable()` gradients are recorded."""
        modes = {name: net.training for name, net in self.nets.items()}
        self.nets.eval()
        try:
            with torch.set_grad_enabled(self.inputs_need_gradients):
                yield
        finally:
            for name, net in self.nets.items():
                net.train(modes[name])

    @contextmanager
    def differentiable(self) -> Iterator[None]:
        """`generate` (and every method that evaluates) records gradients with respect to its inputs,
        the weights frozen: to optimise a latent code (genrun-sample mode=project)."""
        flags = [p.requires_grad for p in self.nets.parameters()]
        self.nets.requires_grad_(False)
        self.inputs_need_gradients = True
        try:
            yield
        finally:
            self.inputs_need_gradients = False
            for p, flag in zip(self.nets.parameters(), flags, strict=True):
                p.requires_grad_(flag)

    def gaussian(self, *shape: int, rng: torch.Generator | None = None) -> Tensor:
        """N(0, I) noise on the family's device (from `rng` when one is given)."""
        return torch.randn(*shape, device=self.device, generator=rng)


def critic_objective(loss: Any, critic: Critic, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """An adversarial critic's loss plus the objective's regularisers that run with every critic
    update (already weighted), and the scalars to log. `critic` maps inputs to logits (it may
    close over conditioning, e.g. labels)."""
    loss_d = loss.d_loss(critic(real), critic(fake))
    regs = loss.regularizers(critic, real, fake)
    return sum(regs.values(), start=loss_d), {"loss/d": loss_d, **regs}


def critic_phases(loss: Any, constrained: nn.Module, objective: Objective, repeats: int,
                  real_critic: Callable[[dict[str, Tensor]], tuple[Critic, Tensor]]) -> list[Phase]:
    """The critic's phases of an adversarial family: role `discriminator`, `repeats` (n_critic)
    updates on fresh batches, each followed by the objective's constraint on `constrained` (WGAN's
    clipping: the critic's own layers, not a head that shares its body); then, when the objective
    has a lazy regulariser (R1 every k steps, Karras et al. 2020, sec. 3.1), its phase "Dreg" on
    every k-th step, on a fresh batch, where `real_critic(batch)` gives the critic and its real inputs."""
    phases = [Phase("D", ("discriminator",), objective, repeats=repeats,
                    after=lambda: loss.after_critic_step(constrained))]
    every = int(getattr(loss, "lazy_every", 1))
    if every > 1:
        def lazy_objective(batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
            terms = loss.lazy_regularizers(*real_critic(batch))
            return sum(terms.values()), terms

        phases.append(Phase("Dreg", ("discriminator",), lazy_objective, every=every))
    return phases
