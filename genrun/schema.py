"""Valid ranges of every numeric config key, checked before any work starts.

A range is declared where the value is used: on the parameter of the class a `_target_`
names (`width: PositiveInt`), in FOREIGN for torch's own classes, and in PLAIN_KEYS for the
few keys that no `_target_` takes (the trainer's schema and some dataset keys). A value
outside its range is one line naming the key the user typed (an interpolation is followed
back to its source, e.g. model.z_dim rather than model.generator.z_dim), the value and the
valid range. tests/test_schema.py checks that every numeric key of every option of every
group has a declared range.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genrun.config import EvalConfig, TrainerConfig
from genrun.errors import GenrunError
from genrun.ranges import Range

# Ranges of the parameters of classes genrun does not own, by `_target_`.
_OPTIMIZER = {"lr": Range(0), "betas": Range(0, 1, high_open=True), "eps": Range(0, low_open=True),
              "weight_decay": Range(0), "momentum": Range(0), "dampening": Range(0, 1),
              "alpha": Range(0, 1, high_open=True)}
FOREIGN: dict[str, dict[str, Range]] = {
    "torch.optim.Adam": _OPTIMIZER, "torch.optim.AdamW": _OPTIMIZER, "torch.optim.RMSprop": _OPTIMIZER,
    "torch.optim.SGD": _OPTIMIZER,
    "torch.optim.lr_scheduler.LinearLR": {"start_factor": Range(0, 1, low_open=True), "end_factor": Range(0, 1),
                                          "total_iters": Range(1, integer=True)},
    "torch.optim.lr_scheduler.CosineAnnealingLR": {"T_max": Range(1, integer=True), "eta_min": Range(0)},
    "torch.optim.lr_scheduler.StepLR": {"step_size": Range(1, integer=True), "gamma": Range(0, low_open=True)},
    "torch.nn.Softplus": {"beta": Range(0, low_open=True), "threshold": Range(0, low_open=True)},
    "torch.nn.ELU": {"alpha": Range(0, low_open=True)},
}

# Keys no `_target_` takes as an argument (dataset keys read by the run; trainer: its schema).
PLAIN_KEYS: dict[str, Range] = {
    "dataset.num_workers": Range(0, integer=True),
    "dataset.num_classes": Range(0, integer=True),
    "dataset.image_size": Range(1, integer=True),
    "dataset.channels": Range(1, integer=True),
    "dataset.range": Range(),
    "dataset.shape": Range(1, integer=True),
    "dataset.rho": Range(-1, 1, low_open=True, high_open=True),
    "dataset.dim": Range(1, integer=True),
    "dataset.validation": Range(0, integer=True),
}

INTERPOLATION = re.compile(r"\$\{(\.*)([\w.]+)\}")


def locate(path: str, missing: Any = None) -> Any:
    """The object a dotted `_target_` path names (quietly, unlike Hydra's lookup), else `missing`."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, missing)
            if obj is missing:
                return missing
        return obj
    return missing


def range_of(hint: Any) -> Range | None:
    """The Range inside an annotation: Annotated[..., Range], possibly within `X | None`."""
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, Range):
            return meta
    for arg in typing.get_args(hint):
        found = range_of(arg)
        if found is not None:
            return found
    return None


def declared_ranges(target: str) -> dict[str, Range]:
    """Parameter name -> Range for the class or function a `_target_` names."""
    if target in FOREIGN:
        return FOREIGN[target]
    obj = locate(target)
    if obj is None:
        return {}
    fn: Callable = obj.__init__ if inspect.isclass(obj) else obj
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):
        return {}
    return {name: r for name, hint in hints.items() if (r := range_of(hint)) is not None}


def schema_ranges() -> dict[str, Range]:
    """The declared ranges of the structured `trainer` and `eval` groups."""
    from dataclasses import fields

    return {f"{group}.{f.name}": f.metadata["range"] for group, schema in (("trainer", TrainerConfig), ("eval", EvalConfig))
            for f in fields(schema) if "range" in f.metadata}


def numeric_leaves(resolved: Any, raw: Any, path: str, ranges: dict[str, Range]) -> Iterator[tuple[str, Any, Any, Range | None]]:
    """(path, value, raw value, declared range) of every number (or list of numbers) in a config tree."""
    if isinstance(resolved, dict):
        node_ranges = declared_ranges(resolved["_target_"]) if isinstance(resolved.get("_target_"), str) else {}
        for key, value in resolved.items():
            if key.startswith("_") and key.endswith("_"):
                continue
            sub = f"{path}.{key}" if path else str(key)
            declared = ranges.get(sub) or node_ranges.get(key)
            raw_value = raw.get(key) if isinstance(raw, dict) else None
            if is_numeric(value):
                yield sub, value, raw_value, declared
            elif declared is not None and not isinstance(value, (dict, list)) and value is not None:
                yield sub, value, raw_value, declared  # a string where a number belongs
            else:
                yield from numeric_leaves(value, raw_value, sub, ranges)
    elif isinstance(resolved, list) and not is_numeric(resolved):
        for i, value in enumerate(resolved):
            raw_value = raw[i] if isinstance(raw, list) and i < len(raw) else None
            yield from numeric_leaves(value, raw_value, f"{path}[{i}]", ranges)


def is_numeric(value: Any) -> bool:
    """A number, or a non-empty list of numbers or numeric strings (an interpolated shape)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def source_key(path: str, raw: Any) -> str:
    """The key the user set: an interpolation `${a.b}` (or relative `${..b}`) is followed back."""
    if not isinstance(raw, str):
        return path
    match = INTERPOLATION.fullmatch(raw.strip())
    if match is None:
        return path
    dots, target = match.groups()
    if not dots:
        return target
    parent = path.split(".")[: -len(dots)]
    return ".".join([*parent, target])


def check_ranges(cfg: DictConfig) -> None:
    """Every numeric key inside its declared range, else one GenrunError line."""
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    raw = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    resolved.pop("hydra", None)
    ranges = {**PLAIN_KEYS, **schema_ranges()}
    for path, value, raw_value, declared in numeric_leaves(resolved, raw, "", ranges):
        if declared is None:
            continue
        values = value if isinstance(value, list) else [value]
        bad = [i for i, v in enumerate(values) if not declared.contains(v)]
        if bad:
            if isinstance(value, list) and isinstance(raw_value, list):  # an interpolated element
                path, raw_value, value = f"{path}[{bad[0]}]", raw_value[bad[0]], value[bad[0]]
            key = source_key(path, raw_value)
            used_as = f" (used as {path})" if key != path else ""
            shown = value if not isinstance(value, str) else repr(value)
            raise GenrunError(f"{key}={shown}: must be {declared.describe()}{used_as}")


def undeclared_numeric_keys(cfg: DictConfig) -> list[str]:
    """Numeric keys with no declared range (tests keep this empty for every shipped option).

    A key that only feeds declared keys through interpolation (optimizer.lr -> each role's lr)
    is checked through them, under its own name."""
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    raw = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    resolved.pop("hydra", None)
    ranges = {**PLAIN_KEYS, **schema_ranges()}
    leaves = list(numeric_leaves(resolved, raw, "", ranges))
    fed = {source_key(path, raw_value) for path, _, raw_value, declared in leaves if declared is not None}
    return [path for path, _, _, declared in leaves if declared is None and path not in fed]
