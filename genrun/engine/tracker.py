"""Running means of a step's scalars, kept on the device: the host reads them only at log time."""

from __future__ import annotations

import torch
from torch import Tensor

from genrun.errors import GenrunError


class NonFiniteLoss(GenrunError):
    """A reported scalar became NaN or infinite."""

    def __init__(self, key: str, step: int) -> None:
        super().__init__(f"{key} became NaN or infinite at step {step}")
        self.key, self.step = key, step


class ScalarTracker:
    """Sums scalars and remembers, per key, the first step at which one was not finite.

    `add` only queues tiny device ops (no host sync); `flush` reads everything at once.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, Tensor] = {}
        self.first_bad: dict[str, Tensor] = {}
        self.count = 0
        self.step_t = torch.zeros((), dtype=torch.long, device=device)

    def add(self, scalars: dict[str, Tensor]) -> None:
        self.step_t += 1
        self.count += 1
        for key, value in scalars.items():
            value = value.detach().float()
            if key not in self.sums:
                self.sums[key] = torch.zeros((), device=self.device)
                self.first_bad[key] = torch.full((), -1, dtype=torch.long, device=self.device)
            self.sums[key] += value
            bad = ~torch.isfinite(value) & (self.first_bad[key] < 0)
            self.first_bad[key] = torch.where(bad, self.step_t, self.first_bad[key])

    def sync_step(self, step: int) -> None:
        """Align the device step counter with the loop's (at start and after resume)."""
        self.step_t.fill_(step)

    def check(self) -> None:
        """Raise NonFiniteLoss if any scalar so far was not finite (one host sync, sums kept)."""
        if self.first_bad:
            self._raise_first_bad(list(self.first_bad), torch.stack(list(self.first_bad.values())).tolist())

    @staticmethod
    def _raise_first_bad(keys: list[str], bad_steps: list[float]) -> None:
        bad = [(int(s), k) for k, s in zip(keys, bad_steps, strict=True) if s >= 0]
        if bad:
            step, key = min(bad)
            raise NonFiniteLoss(key, step)

    def flush(self) -> dict[str, float]:
        """Means since the last flush; raises NonFiniteLoss naming the first bad key and step."""
        if not self.sums:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k] for k in keys] + [self.first_bad[k].float() for k in keys]).tolist()
        means, bad_steps = values[: len(keys)], values[len(keys) :]
        self._raise_first_bad(keys, bad_steps)
        out = {k: m / self.count for k, m in zip(keys, means, strict=True)}
        for k in keys:
            self.sums[k].zero_()
        self.count = 0
        return out
