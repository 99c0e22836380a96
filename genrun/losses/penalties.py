"""Critic regularisers: penalties added to the critic's loss, and constraints applied after its update."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn


def at_least_float32(x: Tensor) -> Tensor:
    """Half-precision values up to float32; float32 and float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def full_precision(x: Tensor) -> contextlib.AbstractContextManager:
    """Gradient penalties run in float32 under any autocast: squared input gradients overflow
    float16 and lose most digits in bfloat16. (No-op where no autocast is on.)"""
    kind = x.device.type
    if kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """Gulrajani et al. 2017: E[(||grad_x V(x_hat)||_2 - 1)^2] on x_hat = a x + (1 - a) x~.

    `a` is drawn once per sample (not per pixel) and the norm is taken over each sample's
    whole flattened gradient (not per channel): the two most common bugs in the wild.
    """
    real, fake = at_least_float32(real.detach()), at_least_float32(fake.detach())
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    with full_precision(x_hat):
        (grad,) = torch.autograd.grad(at_least_float32(critic(x_hat)).sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """Mescheder et al. 2018, sec. 4.1: E_P[||grad_x V(x)||^2] on real data only (unweighted: R1 = gamma/2 * this).

    V is the critic's raw output (the logit), and the squared norm is taken per sample over its
    whole flattened gradient; the graph is kept so the penalty trains the critic.
    """
    x = at_least_float32(real.detach()).requires_grad_(True)
    with full_precision(x):
        (grad,) = torch.autograd.grad(at_least_float32(critic(x)).sum(), x, create_graph=True)
        return grad.flatten(1).pow(2).sum(1).mean()


@torch.no_grad()
def clip_weights(net: nn.Module, clip: float) -> None:
    """Arjovsky et al. 2017, alg. 1: w <- clip(w, -c, c) for every parameter of the critic, in place."""
    for param in net.parameters():
        param.clamp_(-clip, clip)
