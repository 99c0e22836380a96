"""The packaged options of the evaluation groups (configs/<group>/<name>.yaml), read without Hydra.

A resume and `genrun-eval` start from a saved run's config, not from a fresh composition, so
they read the `metrics`, `features` and `eval` options they need here: the ones the command
line names, or today's defaults (configs/config.yaml) for a run saved before these groups
existed. Kept free of torch.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from genrun.errors import GenrunError

EVAL_GROUPS = ("eval", "metrics", "features")  # they decide how a run is measured, never how it trains
# What a resume may change (the rest comes from the checkpoint): how long and how it trains, how
# it is measured, what it returns to a sweeper, and the resume itself. genrun.task applies it.
MAY_CHANGE_ON_RESUME = ("trainer", "resume", "monitor", *EVAL_GROUPS)


def option_names(group: str) -> list[str]:
    """The packaged options of `group`, e.g. ['dc', 'fid', 'kid', 'pr'] for metrics."""
    folder = files("genrun.configs").joinpath(group)
    return sorted(e.name.removesuffix(".yaml") for e in folder.iterdir() if e.name.endswith(".yaml"))


def load_option(group: str, name: str) -> DictConfig:
    """configs/<group>/<name>.yaml without its defaults list; an unknown name lists the valid ones."""
    valid = option_names(group)
    if name not in valid:
        raise GenrunError(f"{group}={name} is not an option; valid: {', '.join(valid)}")
    node = OmegaConf.create(files("genrun.configs").joinpath(group, f"{name}.yaml").read_text())
    node.pop("defaults", None)
    return node


def choice_names(value: str | list[str]) -> list[str]:
    """`fid,kid`, `[fid,kid]` or a list -> ['fid', 'kid'] (the list group `metrics`)."""
    items = value if isinstance(value, list) else str(value).strip().strip("[]").split(",")
    return [str(n).strip() for n in items if str(n).strip()]


def default_choice(group: str) -> Any:
    """The option configs/config.yaml picks for `group` (a list for `metrics`)."""
    primary = OmegaConf.to_container(OmegaConf.create(files("genrun.configs").joinpath("config.yaml").read_text()))
    for entry in primary["defaults"]:
        if isinstance(entry, dict) and group in entry:
            return entry[group]
    raise GenrunError(f"configs/config.yaml picks no default for group {group}")


def group_node(group: str, choice: Any) -> DictConfig:
    """The config node of an evaluation group for `choice`, as Hydra would compose it."""
    if group == "metrics":  # each file nests its node under its own name
        return OmegaConf.merge(OmegaConf.create({}), *[load_option("metrics", n) for n in choice_names(choice)])
    if group == "eval":
        from genrun.config import EvalConfig

        return OmegaConf.merge(OmegaConf.structured(EvalConfig), load_option("eval", str(choice)))
    return load_option(group, str(choice))


def with_eval_groups(cfg: DictConfig, choices: dict[str, Any], dotted: list[str]) -> DictConfig:
    """`cfg` with the evaluation groups chosen in `choices` (group -> option), the ones it lacks
    at today's defaults, then the `dotted` overrides (e.g. eval.n_fake=100) applied."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    for group in EVAL_GROUPS:
        if choices.get(group) is not None:
            cfg[group] = group_node(group, choices[group])
        elif group not in cfg:
            cfg[group] = group_node(group, default_choice(group))
    try:
        from genrun.config import EvalConfig

        cfg.eval = OmegaConf.merge(OmegaConf.structured(EvalConfig), cfg.eval)
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotted))
    except OmegaConfBaseException as exc:
        raise GenrunError(f"bad evaluation setting: {str(exc).splitlines()[0]}") from exc
