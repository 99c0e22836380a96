"""One rich console for log lines, the progress bar and the summary (no torch import here)."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler

console = Console()
error_console = Console(stderr=True)


class ConsoleHandler(logging.Handler):
    """Log records to the shared console so they never tear the progress bar; errors to stderr.

    On a terminal lines are rich-formatted; elsewhere (CI logs, pipes) they are plain text.
    A record logged with `extra={"console": False}` goes to the log file only: the progress
    reporter uses it for the periodic step lines while the live bar shows the same numbers.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level=level)
        self.rich = RichHandler(console=console, show_path=False, markup=False, log_time_format="[%X]")
        self.plain = logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s", "%H:%M:%S")

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, "console", True):
            return
        target = error_console if record.levelno >= logging.ERROR else console
        if target.is_terminal:
            self.rich.console = target
            self.rich.emit(record)
        else:
            stream = sys.stderr if record.levelno >= logging.ERROR else sys.stdout
            stream.write(self.plain.format(record) + "\n")
            stream.flush()
