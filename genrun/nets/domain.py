"""Pieces of adversarial domain adaptation (Ganin & Lempitsky 2015): the gradient-reversal layer,
the small classifier heads on a shared feature extractor, and a step counter for schedules."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genrun.nets.mlp import mlp
from genrun.ranges import NonNegativeInt, PositiveInt


class GradientReversal(torch.autograd.Function):
    """Ganin & Lempitsky 2015, sec. 3.3: the identity forward, -scale x the gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: Tensor) -> Tensor:
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (scale,) = ctx.saved_tensors
        return -scale.to(grad.dtype) * grad, None


def reverse_gradient(x: Tensor, scale: float | Tensor) -> Tensor:
    """x unchanged; its gradient multiplied by -scale (a tensor scale costs no host sync)."""
    return GradientReversal.apply(x, torch.as_tensor(scale, device=x.device, dtype=torch.float32))


def classifier_head(in_dim: PositiveInt, out_dim: PositiveInt, hidden: PositiveInt = 100,
                    depth: NonNegativeInt = 1) -> nn.Sequential:
    """features -> LeakyReLU -> `depth` hidden layers of `hidden` units (LeakyReLU 0.2) -> out_dim logits."""
    return nn.Sequential(nn.LeakyReLU(0.2), mlp([in_dim, *[hidden] * depth, out_dim], nn.LeakyReLU(0.2)))


class StepCounter(nn.Module):
    """Training steps done and the length the run started with, as buffers (saved in checkpoints, so a
    schedule resumes where it was and keeps its length); `progress` is their ratio p in [0, 1]."""

    def __init__(self, total: PositiveInt) -> None:
        super().__init__()
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("total", torch.tensor(int(total), dtype=torch.long))

    def progress(self) -> Tensor:
        return (self.steps.float() / self.total.float()).clamp(max=1.0)

    @torch.no_grad()
    def tick(self) -> None:
        self.steps += 1
