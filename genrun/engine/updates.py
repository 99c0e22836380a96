"""The engine's update: families declare phases, this module runs them.

A phase (genrun.engine.protocol.Phase) names the optimizer roles it steps and the objective
it minimises; the Updater does the rest, the same way for every family: draw the batch,
zero the phase's gradients, freeze every other parameter, forward under the precision's
autocast, backward (scaled for fp16), average gradients across processes, clip, step, and
the phase's after-step hook (WGAN clipping, EMA). Mixed precision, several processes and
gradient clipping live here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor

from genrun.data.bundle import Batch
from genrun.engine import distributed
from genrun.engine.protocol import Family, Phase
from genrun.errors import GenrunError

log = logging.getLogger("genrun")

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
SKIPS_BEFORE_WARNING = 20  # fp16 steps skipped in a row (inf/NaN gradients) before the log says so


def precision_name(precision: Any) -> str:
    """`trainer.precision` as one of PRECISIONS' keys (YAML may give 32 or 16 as integers)."""
    name = str(getattr(precision, "value", precision))
    if name not in PRECISIONS:
        raise GenrunError(f"trainer.precision={precision}: valid: {', '.join(PRECISIONS)}")
    return name


class Updater:
    """Runs a family's phases: one `step` is every phase due at that step, each `repeats` times, in order."""

    def __init__(self, device: torch.device | str = "cpu", precision: Any = "32", grad_clip: float = 0.0) -> None:
        self.device = torch.device(device)
        self.precision = precision_name(precision)
        self.dtype = PRECISIONS[self.precision]
        if self.precision == "16" and self.device.type == "cpu":
            raise GenrunError("trainer.precision=16 needs a GPU (float16 matrix kernels and loss scaling); "
                              "on the CPU use trainer.precision=bf16")
        self.grad_clip = float(grad_clip)
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.skipped: dict[str, int] = {}
        self.plans: dict[int, PhasePlan] = {}  # by id(phase): what an update touches, found once

    # -- what a step does ---------------------------------------------------------------------
    def step(self, pipeline: Family, next_batch: Callable[[], Batch], step: int) -> dict[str, Tensor]:
        """Training step number `step` (1-based) of `pipeline`: the phases due at it, then one step of
        its LR schedules; scalars stay on the device."""
        scalars: dict[str, Tensor] = {}
        batch: Batch | None = None
        for phase in pipeline.phases:
            if not phase.runs_at(step):
                continue
            for _ in range(phase.repeats):
                if phase.fresh_batch or batch is None:
                    batch = next_batch()
                scalars.update(self.update(pipeline, phase, batch))
        for scheduler in pipeline.schedulers.values():
            scheduler.step()
        return scalars

    def plan(self, pipeline: Family, phase: Phase) -> PhasePlan:
        """The phase's optimizers, their parameters, and every other trainable parameter (to
        freeze), found on its first update: the networks do not change during a run."""
        if id(phase) not in self.plans:
            optimizers = [pipeline.optimizers[role] for role in phase.roles]
            params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
            own = {id(p) for p in params}
            others = [p for p in pipeline.nets.parameters() if p.requires_grad and id(p) not in own]
            self.plans[id(phase)] = PhasePlan(optimizers, params, others)
        return self.plans[id(phase)]

    def update(self, pipeline: Family, phase: Phase, batch: Batch) -> dict[str, Tensor]:
        """One update of the phase's optimizers on its objective."""
        optimizers, params, others = self.plan(pipeline, phase)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        with frozen(others), self.autocast():
            loss, scalars = phase.objective(batch)
        scaler = self.scaler(phase.name)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        average_gradients(params)
        if scaler is not None:
            for opt in optimizers:
                scaler.unscale_(opt)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if scaler is None:
            for opt in optimizers:
                opt.step()
        else:
            self.scaled_step(phase.name, scaler, optimizers)
        if phase.after is not None:
            phase.after()
        return {key: value.detach() for key, value in scalars.items()}

    # -- precision ----------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self, phase: str) -> torch.amp.GradScaler | None:
        """fp16 only: one loss scaler per phase (a phase's one loss may step several roles)."""
        if self.precision != "16":
            return None
        if phase not in self.scalers:
            self.scalers[phase] = torch.amp.GradScaler(self.device.type)
        return self.scalers[phase]

    def scaled_step(self, phase: str, scaler: torch.amp.GradScaler, optimizers: list[torch.optim.Optimizer]) -> None:
        """Step through the scaler (it skips the step on inf/NaN gradients) and say so when that keeps happening."""
        before = scaler.get_scale()
        for opt in optimizers:
            scaler.step(opt)
        scaler.update()
        if scaler.get_scale() < before:  # the scale only drops after a skipped step
            self.skipped[phase] = self.skipped.get(phase, 0) + 1
            if self.skipped[phase] == SKIPS_BEFORE_WARNING:
                log.warning("fp16: the %s phase skipped its last %d steps (inf/NaN gradients; loss scale now %g); "
                            "consider trainer.precision=bf16", phase, SKIPS_BEFORE_WARNING, scaler.get_scale())
        else:
            self.skipped[phase] = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, scaler_state in state.get("scalers", {}).items():
            scaler = self.scaler(name)
            if scaler is not None:
                scaler.load_state_dict(scaler_state)



class PhasePlan(NamedTuple):
    optimizers: list[torch.optim.Optimizer]
    params: list[Tensor]  # what the phase's optimizers step
    others: list[Tensor]  # every other trainable parameter: frozen during the phase's forward


@contextlib.contextmanager
def frozen(params: list[Tensor]) -> Iterator[None]:
    """These parameters stop recording gradients (no weight-grad work for the frozen critic in a
    generator phase), then get their flag back."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def average_gradients(params: list[Tensor]) -> None:
    """Across processes (torchrun), every gradient becomes the mean of the ranks' gradients, in
    one all-reduce over all of them, flattened. A parameter this rank left unused (grad None)
    takes part with zeros, as in PyTorch's DDP, so every rank reduces a buffer of the same
    layout (unequal ones make gloo fail and NCCL hang or mix gradients); one that no rank used
    keeps grad None, as it would alone. A no-op in one process."""
    if not distributed.active() or not params:
        return
    missing = [p.grad is None for p in params]
    grads = [torch.zeros_like(p) if gone else p.grad for p, gone in zip(params, missing, strict=True)]
    used = torch.tensor([not gone for gone in missing], dtype=grads[0].dtype, device=grads[0].device)
    flat = distributed.all_reduce_(torch._utils._flatten_dense_tensors([*grads, used]), "mean")
    *synced, users = torch._utils._unflatten_dense_tensors(flat, [*grads, used])
    # only a rank that left a parameter unused asks (one host read) whether any other used it
    used_anywhere = (users > 0).tolist() if any(missing) else [True] * len(params)
    for p, grad, mean, gone, anywhere in zip(params, grads, synced, missing, used_anywhere, strict=True):
        if gone and anywhere:
            p.grad = grad
        if anywhere:
            p.grad.copy_(mean)


def prepare_for_speed(pipeline: Family, compile_nets: bool) -> None:
    """Device-level speed settings, the same for every family: on CUDA, cuDNN picks the fastest
    convolution algorithms and conv nets use channels_last; `trainer.compile` compiles each net
    in place (state_dict keys unchanged, so checkpoints load either way)."""
    if pipeline.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        for net in pipeline.nets.values():
            if any(isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for m in net.modules()):
                net.to(memory_format=torch.channels_last)
    if compile_nets:
        for net in pipeline.nets.values():
            net.compile()


def compile_failure(exc: BaseException) -> GenrunError | None:
    """torch.compile's failures (no C++ compiler, an unsupported platform) as one line, else None."""
    from torch._dynamo.exc import TorchDynamoException

    if isinstance(exc, TorchDynamoException):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return GenrunError(f"trainer.compile=true failed on this platform ({type(exc).__name__}: {first}); "
                           "use trainer.compile=false")
    return None


def train_step(pipeline: Family, next_batch: Callable[[], Batch], step: int = 1) -> dict[str, Tensor]:
    """Step number `step` in fp32 in one process (tests, scripts): the same update the loop runs."""
    return Updater(pipeline.device).step(pipeline, next_batch, step)
