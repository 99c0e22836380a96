"""genrun-report PATH: one table of every run under a folder (a sweep, or outputs/).

Columns: the settings that differ between the runs shown, status, step, the final metrics (the
runs' primary metric and the common quality metrics; all with --all-keys), the best evaluation
during training, and the folder. Reads only what runs write (genrun.runs), so it works on a
copy of a cluster's output folder, and imports no torch, so it answers at once.
"""

from __future__ import annotations

import argparse
import csv
import operator
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genrun.errors import GenrunError
from genrun.runs import Run, find_runs, natural_key, read_run

USAGE = "genrun-report PATH [--sort KEY] [--desc] [--filter EXPR ...] [--csv FILE] [--all-keys]"
# shown beside each run's primary: sample quality, and the likelihood every likelihood family shares (nll, bpd)
DEFAULT_METRICS = ("fid", "kid", "precision", "recall", "kl_to_uniform", "modes", "bpd", "nll")
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "!=": operator.ne, "==": operator.eq, "=": operator.eq,
    "<": operator.lt, ">": operator.gt,
}
FILTER = re.compile(r"^\s*([^<>=!\s]+)\s*(<=|>=|!=|==|=|<|>)\s*(\S.*?)\s*$")

Row = dict[str, Any]


def direction(key: str, directions: dict[str, str]) -> str:
    """"lower" or "higher" is better for a metric key (best/<key> like <key>), as the runs say; "" when unknown."""
    return directions.get(key.removeprefix("best/"), "")


def row_of(run: Run, root: Path) -> Row:
    """One run as column -> value (missing columns are absent)."""
    row: Row = {**run.settings, "status": run.status, "step": run.step, **run.metrics}
    row["folder"] = str(run.folder.relative_to(root)) if run.folder != root else "."
    if run.notes:
        row["error"] = "; ".join(run.notes)
    return {k: v for k, v in row.items() if v is not None}


def differing(runs: Sequence[Run]) -> list[str]:
    """Settings whose value (or presence) is not the same in every run, in first-seen order."""
    keys = list(dict.fromkeys(k for run in runs for k in run.settings))
    missing = object()
    return [k for k in keys if len({repr(run.settings.get(k, missing)) for run in runs}) > 1]


def metric_columns(runs: Sequence[Run], all_keys: bool) -> list[str]:
    """Each run's primary metric, then fid/kid/precision/recall/kl_to_uniform/modes/bpd/nll, then the best,
    when any run has them; with `all_keys` every number of metrics.json."""
    present = list(dict.fromkeys(k for run in runs for k in run.metrics if k != "step"))
    wanted = [run.primary for run in runs if run.primary] + list(DEFAULT_METRICS)
    chosen = [k for k in dict.fromkeys(wanted) if k in present]
    best = [k for k in present if k.startswith("best/")]
    rest = sorted(k for k in present if k not in chosen and k not in best) if all_keys else []
    return chosen + rest + best


def columns(runs: Sequence[Run], rows: Sequence[Row], all_keys: bool, sort: str | None) -> list[str]:
    """The table's columns: differing settings, status, step, metrics, folder (and error)."""
    cols = [*differing(runs), "status", "step", *metric_columns(runs, all_keys)]
    if sort and sort not in cols and sort != "folder":
        cols.append(sort)
    cols.append("folder")
    if any("error" in row for row in rows):
        cols.append("error")
    return cols


def number(value: Any) -> float | None:
    """`value` as a float when it is (or reads as) a number, else None."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class Filter:
    """`KEY OP VALUE`: = == != compare numbers as numbers and anything else as text; < <= > >= need numbers."""

    key: str
    op: str
    value: str

    def keeps(self, row: Row) -> bool:
        if self.key not in row:
            return False
        mine, theirs = number(row[self.key]), number(self.value)
        if self.op in ("=", "==", "!="):
            if mine is None or theirs is None:
                mine, theirs = text(row[self.key]), self.value
            return OPERATORS[self.op](mine, theirs)
        return mine is not None and OPERATORS[self.op](mine, theirs)


def parse_filter(expr: str, known: set[str]) -> Filter:
    """One --filter expression, checked against the keys the runs have."""
    match = FILTER.match(expr)
    if not match:
        raise GenrunError(f"--filter {expr!r} is not KEY OP VALUE with OP one of = != < <= > >= "
                          "(e.g. --filter model=dcgan --filter 'fid<20')")
    key, op, value = match.groups()
    if key not in known:
        raise GenrunError(f"--filter {expr!r}: no run has the key {key!r}; {known_keys(known)}")
    if op in ("<", "<=", ">", ">=") and number(value) is None:
        raise GenrunError(f"--filter {expr!r}: {op} compares numbers, and {value!r} is not one")
    return Filter(key, op, value)


def known_keys(known: set[str]) -> str:
    """The keys a user can name, short enough for one line (config keys are many)."""
    simple = sorted(k for k in known if "." not in k)
    dotted = sorted(k for k in known if "." in k)
    return f"valid: {', '.join(simple)}" + (f", or a config key such as {dotted[0]}" if dotted else "")


def sort_rows(rows: list[Row], key: str | None, desc: bool, directions: dict[str, str] | None = None) -> list[Row]:
    """By `key` (best first when its direction is known from `directions`, else ascending; `desc`
    flips), rows without it last; numbers as numbers, text in natural order. No key: folder order."""
    if key is None:
        return sorted(rows, key=lambda r: natural_key(r["folder"]), reverse=desc)
    reverse = (direction(key, directions or {}) == "higher") != desc
    have = [r for r in rows if key in r]
    numeric = all(number(r[key]) is not None for r in have)
    order = (lambda r: number(r[key])) if numeric else (lambda r: natural_key(text(r[key])))
    return sorted(have, key=order, reverse=reverse) + [r for r in rows if key not in r]


def text(value: Any) -> str:
    """A cell as text on screen: floats to 4 significant digits, booleans as YAML writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_csv(path: Path, cols: Sequence[str], rows: Iterable[Row]) -> None:
    """Every shown row and column, numbers in full precision; replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(cols)
            for row in rows:
                out.writerow([csv_cell(row.get(c)) for c in cols])
        os.replace(tmp, path)
    except OSError as exc:
        raise GenrunError(f"--csv {path}: cannot write it: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return text(value) if isinstance(value, bool) else str(value)


def plain_table(cols: Sequence[str], rows: Sequence[Row]) -> str:
    """Aligned columns, two spaces apart, no box characters: for pipes, files and grep."""
    cells = [list(cols)] + [[text(r[c]) if c in r else "-" for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def print_rich(cols: Sequence[str], rows: Sequence[Row], title: str) -> None:
    """A rich table on a terminal, numbers right-aligned and never broken. When it is wider than
    the terminal, text cells (settings, folders) fold first and what still does not fit is cut,
    with a line saying so (a pipe, e.g. `| less -S`, or --csv shows every column)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    cells = [[text(r[c]) if c in r else "-" for c in cols] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(cols)]
    fits = sum(widths) + 3 * len(cols) + 1 <= console.width
    table = Table(title=title, title_justify="left")
    for c, width in zip(cols, widths, strict=True):
        numeric = any(number(r.get(c)) is not None for r in rows) and c != "folder"
        keep = fits or numeric or c == "status"
        table.add_column(c, justify="right" if numeric else "left", style="bold" if c == "status" else None,
                         overflow="fold", min_width=width if keep else min(width, 16))
    for line in cells:
        table.add_row(*line)
    console.print(table)
    if not fits:
        console.print("[dim]wider than the terminal: `genrun-report ... | less -S` or --csv FILE shows every column[/dim]")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; a bad one is one GenrunError line with the usage."""

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:
            raise GenrunError(f"{message}; usage: {USAGE}")

    parser = Parser(prog="genrun-report", usage=USAGE, description=__doc__.splitlines()[0])
    parser.add_argument("path", metavar="PATH", help="a run folder, a sweep folder or outputs/")
    parser.add_argument("--sort", metavar="KEY", help="a metric (best first: lower fid, higher recall) or any column")
    parser.add_argument("--desc", action="store_true", help="flip the order")
    parser.add_argument("--filter", metavar="EXPR", action="append", default=[],
                        help="KEY OP VALUE, OP one of = != < <= > >= (model=dcgan, 'fid<20'); several are ANDed")
    parser.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    parser.add_argument("--all-keys", action="store_true", help="every number of metrics.json, not only the main ones")
    return parser.parse_args(argv)


def report_command(argv: list[str]) -> list[Row]:
    """Read the runs under PATH, filter, sort, print the table (and the CSV); returns the rows shown."""
    args = parse_args(argv)
    root = Path(args.path).expanduser()
    if not root.is_dir():
        raise GenrunError(f"PATH={args.path}: no such folder (give a run, a sweep folder or outputs/)")
    runs = [read_run(folder) for folder in find_runs(root)]
    if not runs:
        raise GenrunError(f"no runs under {args.path} (a run folder holds .hydra/config.yaml, metrics.json or checkpoints/)")
    rows = [row_of(run, root) for run in runs]
    known = {k for row in rows for k in row}
    filters = [parse_filter(expr, known) for expr in args.filter]
    if args.sort and args.sort not in known:
        raise GenrunError(f"--sort {args.sort}: no run has this key; {known_keys(known)}")
    shown = [(run, row) for run, row in zip(runs, rows, strict=True) if all(f.keeps(row) for f in filters)]
    if not shown:
        raise GenrunError(f"none of the {len(runs)} runs under {args.path} matches {' and '.join(args.filter)}")
    directions = {k: v for run, _ in shown for k, v in run.directions.items()}
    shown_rows = sort_rows([row for _, row in shown], args.sort, args.desc, directions)
    cols = columns([run for run, _ in shown], shown_rows, args.all_keys, args.sort)
    if args.csv:
        write_csv(Path(args.csv).expanduser(), cols, shown_rows)
    title = f"{len(shown_rows)} of {len(runs)} runs under {args.path}"
    if sys.stdout.isatty():
        print_rich(cols, shown_rows, title)
    else:
        print(plain_table(cols, shown_rows))
    return shown_rows
