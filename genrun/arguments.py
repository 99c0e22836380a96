"""key=value command lines of genrun's own commands (genrun-sample, genrun-eval): typed, checked,
each bad argument one GenrunError line with the usage. Kept free of torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genrun.errors import GenrunError


def boolean(value: str) -> bool:
    """true/false (also yes/no, 1/0), any case."""
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if value.lower() not in words:
        raise ValueError(value)
    return words[value.lower()]


def parse_args(argv: list[str], keys: dict[str, Callable[[str], Any]], usage: str) -> dict[str, Any]:
    """key=value arguments, typed by `keys`; `run` is required; unknown keys and bad values are errors."""
    args: dict[str, Any] = {}
    for arg in argv:
        if arg in ("-h", "--help"):
            print(usage)
            raise SystemExit(0)
        key, sep, value = arg.partition("=")
        if not sep or key not in keys:
            raise GenrunError(f"unknown argument {arg!r}; usage: {usage}")
        try:
            args[key] = keys[key](value)
        except ValueError as exc:
            raise GenrunError(f"{key}={value!r} is not a valid {keys[key].__name__}") from exc
    if "run" not in args:
        raise GenrunError(f"run=PATH is required; usage: {usage}")
    return args


def index_list(value: str) -> list[int]:
    """`3,7,9` -> [3, 7, 9] (non-negative integers)."""
    items = [int(v) for v in value.split(",") if v.strip()]
    if not items or min(items) < 0:
        raise ValueError(value)
    return items


def group(value: str) -> list[str]:
    """`3,7,class4` -> ['3', '7', 'class4']: indices, or classK (every example of class K)."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items or not all(v.isdigit() or (v.startswith("class") and v[5:].isdigit()) for v in items):
        raise ValueError(value)
    return items
