"""SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 (submitit's pre-emption and time-out signal) ask the
loop to checkpoint at the next step boundary and stop.

A handler that was installed before genrun's (submitit's: requeue the job on SIGUSR1, SLURM's
pre-emption warning) is not lost: once the run has checkpointed and closed its files,
`pass_on()` hands it the signal, so the job is requeued and continues from that checkpoint."""

from __future__ import annotations

import signal
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class StopSignals:
    """While active, a handled signal sets `received`; the loop acts on it once `agree` hands it
    back (after the ranks exchanged theirs); a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None  # set by the handler, in this process
        self.agreed: int | None = None  # what the loop acts on (single process: `received`)
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for sig in HANDLED:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def agree(self, signum: int | None) -> None:
        """The signal every process acts on at this step (the largest any of them received): kept
        apart from `received`, which the handler may set at any moment, even between the ranks'
        exchange and this call, and must not be lost (it is exchanged at the next step)."""
        self.agreed = signum or None

    def pass_on(self) -> None:
        """Give the signal the run stopped for to the Python handler genrun's replaced, if there
        was one (not the default action, nor Python's own KeyboardInterrupt for SIGINT)."""
        previous = self._previous.get(self.agreed) if self.agreed else None
        if callable(previous) and previous is not signal.default_int_handler:
            previous(self.agreed, None)

    @property
    def requested(self) -> bool:
        return self.agreed is not None

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C (the shell convention), 0 after a scheduler's SIGTERM/SIGUSR1/SIGUSR2."""
        return 130 if self.agreed == signal.SIGINT else 0

    @property
    def name(self) -> str:
        return signal.Signals(self.agreed).name if self.agreed else ""
