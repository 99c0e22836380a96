"""Running means of a step's scalars, kept on the device: the host reads them only at log time."""

from __future__ import annotations

import torch
from torch import Tensor

from genrun.engine import distributed
from genrun.errors import GenrunError


def offsets(groups: dict[tuple[str, ...], list[int]]) -> list[int]:
    """Where each key group starts in the concatenated per-key vectors."""
    starts, total = [], 0
    for keys in groups:
        starts.append(total)
        total += len(keys)
    return starts


class NonFiniteLoss(GenrunError):
    """A reported scalar became NaN or infinite."""

    def __init__(self, key: str, step: int) -> None:
        super().__init__(f"{key} became NaN or infinite at step {step}")
        self.key, self.step = key, step


class ScalarTracker:
    """Collects each step's scalars as one stacked tensor (a single device op per step).

    Nothing is read on the host until `flush` (log time) or `check` (checkpoint time); both
    then find means and the first non-finite value, naming its key and step, in one sync.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[tuple[str, ...], Tensor]] = []
        self.steps: list[int] = []

    @property
    def count(self) -> int:
        return len(self.rows)

    def add(self, step: int, scalars: dict[str, Tensor]) -> None:
        if scalars:
            self.rows.append((tuple(scalars), torch.stack([v.detach().float() for v in scalars.values()])))
            self.steps.append(step)

    def _summarise(self) -> dict[str, float]:
        """Means per key; raises NonFiniteLoss at the first step holding a NaN or inf."""
        if not self.rows:
            return {}
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (keys, _) in enumerate(self.rows):
            groups.setdefault(keys, []).append(i)
        sums, first_rows = [], []
        for idx in groups.values():
            table = torch.stack([self.rows[i][1] for i in idx])  # [rows, keys]
            bad = ~torch.isfinite(table)
            big = torch.full_like(table, float(len(self.rows)))
            row_of_bad = torch.where(bad, torch.arange(len(idx), device=table.device, dtype=table.dtype)[:, None], big)
            sums.append(table.sum(0))
            first_rows.append(row_of_bad.min(0).values)
        # several processes: the mean over every rank's values, and the first bad row on any rank,
        # so that every rank logs the same numbers and stops at the same step
        sum_all = distributed.all_reduce_(torch.cat(sums), "mean")
        bad_all = distributed.all_reduce_(torch.cat(first_rows), "min")
        flat_sums, flat_bad = sum_all.tolist(), bad_all.tolist()  # the host sync
        parts_per_group = [(flat_sums[o:o + len(k)], flat_bad[o:o + len(k)])
                           for o, k in zip(offsets(groups), groups, strict=True)]
        values = [v for s, b in parts_per_group for v in (*s, *b)]
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        first_bad: list[tuple[int, str]] = []
        offset = 0
        for keys, idx in groups.items():
            n = len(keys)
            for j, key in enumerate(keys):
                sums[key] = sums.get(key, 0.0) + values[offset + j]
                counts[key] = counts.get(key, 0) + len(idx)
                row = int(values[offset + n + j])
                if row < len(idx):
                    first_bad.append((self.steps[idx[row]], key))
            offset += 2 * n
        if first_bad:
            step, key = min(first_bad)
            raise NonFiniteLoss(key, step)
        return {k: sums[k] / counts[k] for k in sums}

    def check(self) -> None:
        """Raise NonFiniteLoss if any scalar since the last flush was not finite (sums kept)."""
        self._summarise()

    def flush(self) -> dict[str, float]:
        """Means since the last flush; raises NonFiniteLoss naming the first bad key and step."""
        means = self._summarise()
        self.rows.clear()
        self.steps.clear()
        return means
