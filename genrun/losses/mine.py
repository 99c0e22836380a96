"""Mutual information neural estimation (MINE, Belghazi et al. 2018).

A statistics network T scores joint pairs (x, z) ~ P = P_XZ and marginal pairs
(x, z') ~ Q = P_X x P_Z (z shuffled within the batch); any T gives a lower bound on
I(X; Z) = KL(P || Q), tight at T = log dP/dQ (+ a constant for the DV bound).
Values are in nats; the functions take T's values on a joint and a marginal batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genrun.errors import GenrunError
from genrun.ranges import Rate


def log_mean_exp(t: Tensor) -> Tensor:
    """log E[e^t] over all entries, without overflow."""
    return torch.logsumexp(t.flatten(), 0) - math.log(t.numel())


def dv_bound(t_joint: Tensor, t_marginal: Tensor) -> Tensor:
    """Belghazi et al. 2018, thm. 1 (Donsker-Varadhan): I >= E_P[T] - log E_Q[e^T]."""
    return t_joint.mean() - log_mean_exp(t_marginal)


def f_bound(t_joint: Tensor, t_marginal: Tensor) -> Tensor:
    """Belghazi et al. 2018, sec. 2.2 (f-divergence representation, MINE-f): I >= E_P[T] - E_Q[e^(T-1)]."""
    return t_joint.mean() - torch.exp(t_marginal - 1).mean()


def dv_bound_corrected(t_joint: Tensor, t_marginal: Tensor, log_average: Tensor) -> Tensor:
    """The DV bound's value with the bias-corrected gradient of Belghazi et al. 2018, sec. 3.2.

    The batch gradient of log E_Q[e^T] is E_Q[e^T grad T] / E_Q[e^T] with a batch mean in the
    denominator (biased); here the denominator is `exp(log_average)`, a moving average over
    batches: gradient = grad E_P[T] - E_Q[e^T grad T] / average.
    """
    log_mean = log_mean_exp(t_marginal)
    ratio = torch.exp(log_mean - log_average.detach())  # E_Q[e^T] / average: its gradient is the corrected term
    return t_joint.mean() - log_mean.detach() - (ratio - ratio.detach())


class MovingAverage(nn.Module):
    """Exponential moving average of E_Q[e^T], kept as its logarithm (no overflow).

    Buffers, not attributes: a family registers this module with `add_net`, so checkpoints
    save and restore it and a resumed run continues bit-exactly.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate
        self.register_buffer("log_value", torch.zeros(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def update(self, log_mean: Tensor) -> Tensor:
        """Blend in one batch's log E_Q[e^T] (the first batch sets the average); returns the new log average."""
        log_mean = log_mean.detach().to(self.log_value.dtype)
        keep = math.log1p(-self.rate) if self.rate < 1 else -math.inf
        blended = torch.logaddexp(keep + self.log_value, math.log(self.rate) + log_mean)
        self.log_value.copy_(torch.where(self.count == 0, log_mean, blended))
        self.count += 1
        return self.log_value.clone()


class MIObjective:
    """A MINE lower bound: what the statistics network ascends and what the estimate reports."""

    kind = "mi"

    def new_state(self) -> nn.Module | None:
        """State carried across batches (registered by the family so checkpoints hold it)."""
        return None

    def bound(self, t_joint: Tensor, t_marginal: Tensor) -> Tensor:
        """The bound's value: the MI estimate of T on these samples."""
        raise NotImplementedError

    def surrogate(self, t_joint: Tensor, t_marginal: Tensor, state: nn.Module | None, update: bool = True) -> Tensor:
        """The bound's value, with the gradient to ascend (`update`: advance `state` first)."""
        return self.bound(t_joint, t_marginal)


class DonskerVaradhan(MIObjective):
    """MINE: the DV bound, with the moving-average gradient correction (rate 1: plain batch gradient)."""

    def __init__(self, ma_rate: Rate = 0.01) -> None:
        if not 0 < ma_rate <= 1:
            raise GenrunError(f"ma_rate={ma_rate}: the moving-average rate must be in (0, 1]")
        self.ma_rate = ma_rate

    def new_state(self) -> MovingAverage:
        return MovingAverage(self.ma_rate)

    def bound(self, t_joint: Tensor, t_marginal: Tensor) -> Tensor:
        return dv_bound(t_joint, t_marginal)

    def surrogate(self, t_joint: Tensor, t_marginal: Tensor, state: nn.Module | None, update: bool = True) -> Tensor:
        if not isinstance(state, MovingAverage):
            raise GenrunError("the DV objective needs the MovingAverage state from its new_state()")
        log_average = state.update(log_mean_exp(t_marginal)) if update else state.log_value
        return dv_bound_corrected(t_joint, t_marginal, log_average)


class FDivergence(MIObjective):
    """MINE-f: the f-divergence bound; its batch gradient is unbiased, so no state."""

    def bound(self, t_joint: Tensor, t_marginal: Tensor) -> Tensor:
        return f_bound(t_joint, t_marginal)
