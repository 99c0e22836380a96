"""The end-of-run table: what ran, how fast, what came out, where it is."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from genrun.engine.console import console
from genrun.runs import LOG_END

log = logging.getLogger("genrun")


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One row per number; a metric with a floor shows it beside its value, named by what it is
    (held-out data, raw pixels, the true MI); the protocol (and other nested entries) stays in
    metrics.json."""
    floor = metrics.get("floor") or {}
    floor_of = (metrics.get("protocol") or {}).get("floor_of") or {}
    rows = []
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            continue
        text = format_value(value)
        if key in floor and floor[key] is not None:
            text += f"  ({floor_of.get(key, 'held-out data')}: {format_value(floor[key])})"
        rows.append((key, text))
    best = metrics.get("best") or {}
    if best.get("key") is not None:
        found = f"{format_value(best['value'])} at step {best['step']}" if best.get("value") is not None else "none yet"
        split = f" ({best['split']} split)" if best.get("split") else ""
        rows.append((f"best {best['key']}{split}", found))
    return rows


def print_summary(run_dir: Path, metrics: Mapping[str, Any], title: str = "genrun summary") -> None:
    """A rich table on the console; the same lines, plain, in genrun.log."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    rows = [("run folder", str(run_dir)), *summary_rows(metrics)]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    log.info("%s%s", LOG_END, "; ".join(f"{k}={v}" for k, v in rows), extra={"console": False})
