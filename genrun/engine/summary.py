"""The end-of-run table: what ran, how fast, what came out, where it is."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from genrun.engine.console import console

log = logging.getLogger("genrun")


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_summary(run_dir: Path, metrics: Mapping[str, Any]) -> None:
    """A rich table on the console; the same lines, plain, in genrun.log."""
    table = Table(title="genrun summary", show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    rows = [("run folder", str(run_dir))] + [(k, format_value(v)) for k, v in metrics.items()]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    log.info("summary: %s", "; ".join(f"{k}={v}" for k, v in rows), extra={"console": False})
