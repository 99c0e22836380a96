"""SIGTERM, SIGINT and SIGUSR1 ask the loop to checkpoint at the next step boundary and stop."""

from __future__ import annotations

import signal
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class StopSignals:
    """While active, a handled signal sets `received`; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None
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

    @property
    def requested(self) -> bool:
        return self.received is not None

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C (the shell convention), 0 after a scheduler's SIGTERM/SIGUSR1."""
        return 130 if self.received == signal.SIGINT else 0

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""
