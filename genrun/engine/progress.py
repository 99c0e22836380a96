"""Progress: a live rich bar on a terminal, plain periodic log lines elsewhere (CI, files)."""

from __future__ import annotations

import logging
import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from genrun.engine.console import console

log = logging.getLogger("genrun")


def format_scalars(scalars: dict[str, float]) -> str:
    return " | ".join(f"{k} {v:.4g}" for k, v in scalars.items())


class ProgressReporter:
    """Shows step, speed and the latest logged scalars; every update also goes to genrun.log."""

    def __init__(self, start: int, total: int, enabled: bool = True) -> None:
        self.start, self.total, self.enabled = start, total, enabled
        self.live = console.is_terminal and enabled
        self.t0 = time.perf_counter()
        self.bar: Progress | None = None
        if self.live:
            self.bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[speed]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[scalars]}"),
                console=console, transient=False,
            )
            self.task = self.bar.add_task("train", total=total, completed=start, speed="", scalars="")

    def __enter__(self) -> ProgressReporter:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def steps_per_second(self, step: int) -> float:
        return (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)

    def advance(self, step: int) -> None:
        """Cheap per-step bar update (no host sync: the bar only needs the step count)."""
        if self.bar is not None:
            self.bar.update(self.task, completed=step)

    def report(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:  # another process reports (rank 0 under torchrun)
            return
        speed = f"{self.steps_per_second(step):.1f} steps/s"
        line = f"step {step}/{self.total} | {format_scalars(scalars)} | {speed}"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, speed=speed, scalars=format_scalars(scalars))
        log.info(line, extra={"console": not self.live})


class SlowWork:
    """A `progress(done, total)` callback for work that may be slow (PixelCNN's pixel-by-pixel
    sampling): silent for its first `after_s` seconds, then a rich bar on a terminal, or a plain line
    at every quarter elsewhere; it restarts when `done` starts again from the beginning."""

    def __init__(self, what: str, after_s: float = 2.0) -> None:
        self.what, self.after_s = what, after_s
        self.t0 = time.perf_counter()
        self.bar: Progress | None = None
        self.logged = 0

    def __call__(self, done: int, total: int) -> None:
        if done <= 1:
            self.close()
            self.t0 = time.perf_counter()
        if time.perf_counter() - self.t0 < self.after_s and self.bar is None:
            return
        if console.is_terminal:
            if self.bar is None:
                self.bar = Progress(TextColumn(f"[bold]{self.what}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
                self.task = self.bar.add_task(self.what, total=total)
                self.bar.start()
            self.bar.update(self.task, completed=done)
        elif 4 * done // total > self.logged:
            self.logged = 4 * done // total
            console.print(f"{self.what}: {done}/{total} ({time.perf_counter() - self.t0:.0f} s)", highlight=False)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        self.logged = 0
