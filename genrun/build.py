"""Objects from the config: the device, the data, the family with its objective, optimizers and
schedules, and the evaluator; every failure is one line naming the key and what is valid.

`genrun.train`, `genrun-sample`, `genrun-eval` and the scripts build through these functions.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from genrun.data.binarize import binarize
from genrun.data.bundle import DataBundle, hold_out_validation
from genrun.errors import GenrunError
from genrun.evaluation import Evaluator
from genrun.options import load_option
from genrun.pipelines.base import Pipeline
from genrun.schema import locate


def pick_device(name: str) -> torch.device:
    """`auto` takes the best available accelerator; asking for a missing one is an error."""
    name = str(getattr(name, "value", name))
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        here = ", ".join(["auto", "cpu"] + (["cuda"] if cuda else []) + (["mps"] if mps else []))
        raise GenrunError(f"trainer.device={name} but no {name} device is available here; valid here: {here}")
    return torch.device(name)


def build(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with our errors surfaced and Hydra's wrapped into one line."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except (InstantiationException, OmegaConfBaseException, TypeError, ValueError) as exc:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, GenrunError):
                raise GenrunError(f"{what}: {cause}") from exc
            cause = cause.__cause__
        first = str(exc).strip().splitlines()[0]
        detail = f" {exc.__cause__}" if exc.__cause__ is not None else ""
        raise GenrunError(f"cannot build {what}: {first}{detail}") from exc


def config_name(cfg: DictConfig, group: str) -> str:
    """The option name the user picked for a group (e.g. `dcgan`), else the class name."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    return str(cfg[group].get("_target_", group)).rsplit(".", 1)[-1]


# -- the family and its objective -----------------------------------------------------------
def losses_of_kind(kinds: tuple[str, ...]) -> list[str]:
    """Names of the packaged `loss` options whose objective kind is in `kinds`."""
    from importlib.resources import files

    names = []
    for entry in sorted(files("genrun.configs").joinpath("loss").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            target = OmegaConf.create(entry.read_text()).get("_target_")
            if target and getattr(get_class(target), "kind", None) in kinds:
                names.append(entry.name[: -len(".yaml")])
    return names


def check_model_accepts_loss(cfg: DictConfig) -> None:
    """A family declares the objective kinds it trains with; a mismatch fails before any work."""
    model_cls, loss_cls = get_class(cfg.model._target_), get_class(cfg.loss._target_)
    kinds, kind = tuple(model_cls.loss_kinds), getattr(loss_cls, "kind", "?")
    if kind not in kinds:
        model, loss = config_name(cfg, "model"), config_name(cfg, "loss")
        raise GenrunError(
            f"model={model} does not train with loss={loss} (its kind is {kind}); "
            f"valid losses for {model}: {', '.join(losses_of_kind(kinds))}"
        )


def target_templates(node: Any) -> Iterator[str]:
    """Every unresolved `_target_` string in a config subtree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from target_templates(value)
    elif isinstance(node, list):
        for value in node:
            yield from target_templates(value)


def locatable(path: str) -> bool:
    """Whether a dotted path names a module or an attribute of one."""
    missing = object()
    return locate(path, missing) is not missing


def choices_for(head: str, tail: str) -> list[str]:
    """Names v for which `head + v + tail` exists: submodules of a package, or a module's
    lower-case aliases (e.g. genrun.nets.priors.gaussian)."""
    module = importlib.import_module(head.rstrip("."))
    names = [m.name for m in pkgutil.iter_modules(getattr(module, "__path__", []))]
    names += [n for n, obj in vars(module).items()
              if n.islower() and not n.startswith("_") and getattr(obj, "__module__", None) == module.__name__]
    return sorted(n for n in set(names) if locatable(f"{head}{n}{tail}"))


def target_selectors(model: DictConfig) -> list[tuple[str, str, str]]:
    """(head, key, tail) of each `_target_` that splices in a model key, e.g. model.arch in
    `genrun.nets.${model.arch}.Generator`: such keys pick classes, they are not arguments."""
    selectors = []
    for template in target_templates(OmegaConf.to_container(model, resolve=False)):
        match = re.fullmatch(r"([\w.]+\.)\$\{model\.(\w+)\}([\w.]*)", template)
        if match is not None:
            selectors.append(match.groups())
    return selectors


def check_target_choices(model: DictConfig) -> None:
    """A model key spliced into a `_target_` (model.arch, model.prior) must name something that
    exists; otherwise one line with the valid values instead of Hydra's import error."""
    for head, key, tail in target_selectors(model):
        value = model.get(key)
        if not locatable(f"{head}{value}{tail}"):
            raise GenrunError(f"model.{key}={value} is not a valid choice; valid: {', '.join(choices_for(head, tail))}")


def model_arguments(model: DictConfig) -> DictConfig:
    """The model node without its selector keys (resolved first, so `_target_`s keep their choice)."""
    resolved = OmegaConf.create(OmegaConf.to_container(model, resolve=True))
    for _, key, _ in target_selectors(model):
        resolved.pop(key, None)
    return resolved


def build_pipeline(cfg: DictConfig, device: torch.device) -> Pipeline:
    """The family of `model` with its objective (`loss`), optimizers and LR schedules."""
    check_model_accepts_loss(cfg)
    check_target_choices(cfg.model)
    loss = build(cfg.loss, f"loss={config_name(cfg, 'loss')}")
    optimizers = build(cfg.optimizer, f"optimizer={config_name(cfg, 'optimizer')}")
    pipeline = build(model_arguments(cfg.model), f"model={config_name(cfg, 'model')}", loss=loss,
                     optimizers=optimizers, device=device)
    if cfg.get("scheduler") is not None:
        what = f"scheduler={config_name(cfg, 'scheduler')}"
        factory = build(cfg.scheduler, what)
        try:
            pipeline.add_schedulers(factory)
        except (TypeError, ValueError) as exc:
            raise GenrunError(f"cannot build {what}: {exc}") from exc
    return pipeline


def check_ema(cfg: DictConfig, pipeline: Pipeline) -> None:
    """trainer.ema > 0 asks for weight averages: a family that keeps none says so."""
    if float(cfg.trainer.get("ema", 0.0)) > 0 and not pipeline.ema_sources:
        raise GenrunError(f"trainer.ema={cfg.trainer.ema}: model={config_name(cfg, 'model')} keeps no EMA copy "
                          "(families with EMA: gan, dcgan, mine); use trainer.ema=0")


def check_metrics_fit(cfg: DictConfig, pipeline: Pipeline, evaluator: Evaluator) -> None:
    """A metric that says it can never measure this family (`refuses`, e.g. bpd of a GAN) is one
    line before training; others that cannot run are left out at evaluation, with the reason."""
    for name, metric in evaluator.metrics.items():
        refuses = getattr(metric, "refuses", None)
        reason = refuses(pipeline) if refuses is not None else None
        if reason:
            raise GenrunError(f"metrics={name} with model={config_name(cfg, 'model')}: {reason}")


# -- the data -----------------------------------------------------------------------------------
def build_data(cfg: DictConfig) -> DataBundle:
    """The dataset's splits: `dataset.validation` examples held out of training, then binarised, then
    `dataset.labelled` applied when the config has it (a labelled subset: genrun.data.labelled). A
    dataset built from another one (translation tasks: `dataset.source=mnist`) has its builder in
    `dataset.builder`, else `dataset.source` is the builder."""
    node = cfg.dataset.builder if "builder" in cfg.dataset else cfg.dataset.source
    data = build(node, f"dataset={config_name(cfg, 'dataset')}")
    data = hold_out_validation(data, int(cfg.dataset.get("validation", 0) or 0))
    data = binarize(data, str(cfg.dataset.get("binarize", "none")), cfg.dataset.get("range"))
    labelled = cfg.dataset.get("labelled")
    return build(labelled, "dataset.labelled")(data) if labelled else data


# -- the evaluator ------------------------------------------------------------------------------
def default_metric_names(cfg: DictConfig) -> list[str]:
    """What `metrics=auto` stands for: the family's own metrics, then (for families that draw
    samples of the data, unless each sample costs many network passes, e.g. PixelCNN's) the dataset's."""
    family = get_class(cfg.model._target_)
    names = list(getattr(family, "default_metrics", ()))
    if getattr(family, "generative", True) and getattr(family, "sample_metrics_by_default", True):
        names += list(cfg.dataset.get("metrics") or [])
    return list(dict.fromkeys(names))


def with_metrics_expanded(cfg: DictConfig) -> DictConfig:
    """`cfg` with `metrics: auto` replaced by the metrics it stands for, in place of `auto` (other
    metrics named beside it stay), so the saved config names every metric of the run."""
    chosen = cfg.get("metrics") or {}
    if "auto" not in chosen:
        return cfg
    nodes: dict[str, Any] = {}
    for name in chosen:
        if name != "auto":
            nodes[name] = chosen[name]
            continue
        for default in default_metric_names(cfg):
            nodes.setdefault(default, load_option("metrics", default)[default])
    expanded = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    expanded.metrics = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(nodes), resolve=False))
    return expanded


def build_evaluator(cfg: DictConfig, device: torch.device) -> Evaluator:
    """The metrics of group `metrics` in the feature space of group `features`, with `eval`'s protocol."""
    cfg = with_metrics_expanded(cfg)
    metrics = {name: build(node, f"metrics.{name}") for name, node in (cfg.get("metrics") or {}).items()}
    features = cfg.get("features")
    space = build(features, f"features={config_name(cfg, 'features')}") if features and features.get("_target_") else None
    ev = cfg.eval
    value_range = cfg.dataset.get("range")
    return Evaluator(metrics, space, n_fake=int(ev.n_fake), n_real=int(ev.n_real),
                     real_split=str(getattr(ev.real_split, "value", ev.real_split)), floor=bool(ev.floor),
                     seed=int(ev.seed), value_range=tuple(value_range) if value_range is not None else None,
                     device=device)
