"""run(cfg) -> metrics: build everything from the config, restore a checkpoint, hand over to the loop."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from genrun.data.binarize import binarize
from genrun.data.bundle import Batches, DataBundle
from genrun.engine import distributed
from genrun.engine.checkpoint import CheckpointDir, remove_stale_temp_files
from genrun.engine.loop import LoopResult, fit
from genrun.engine.outputs import NoOutputs, RunOutputs
from genrun.engine.rng import rng_state, seed_everything, set_rng_state
from genrun.engine.summary import print_summary
from genrun.engine.threads import device_of_job, set_threads
from genrun.engine.tracker import NonFiniteLoss
from genrun.engine.updates import Updater, compile_failure, prepare_for_speed
from genrun.errors import GenrunError
from genrun.eval_loop import BestTracker, PeriodicEvaluation, evaluation_setup
from genrun.evaluation import Evaluation, Evaluator
from genrun.metrics.modes import mode_metrics
from genrun.pipelines.base import Noise, Pipeline
from genrun.runs import LOG_START, config_settings, group_choices
from genrun.schema import check_ranges, locate

log = logging.getLogger("genrun")

MODE_SAMPLES = 2500  # PacGAN protocol


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


def build_evaluator(cfg: DictConfig, device: torch.device) -> Evaluator:
    """The metrics of group `metrics` in the feature space of group `features`, with `eval`'s protocol."""
    metrics = {name: build(node, f"metrics.{name}") for name, node in (cfg.get("metrics") or {}).items()}
    features = cfg.get("features")
    space = build(features, f"features={config_name(cfg, 'features')}") if features and features.get("_target_") else None
    ev = cfg.eval
    value_range = cfg.dataset.get("range")
    return Evaluator(metrics, space, n_fake=int(ev.n_fake), n_real=int(ev.n_real),
                     real_split=str(getattr(ev.real_split, "value", ev.real_split)), floor=bool(ev.floor),
                     seed=int(ev.seed), value_range=tuple(value_range) if value_range is not None else None,
                     device=device)


def build_data(cfg: DictConfig) -> DataBundle:
    data = build(cfg.dataset.source, f"dataset={config_name(cfg, 'dataset')}")
    return binarize(data, str(cfg.dataset.get("binarize", "none")), cfg.dataset.get("range"))


def preview_size(trainer: DictConfig, data: DataBundle) -> int:
    if trainer.sample_n is not None:
        return int(trainer.sample_n)
    return 1024 if data.modes is not None else 64


def preview_inputs(pipeline: Pipeline, data: DataBundle, n: int, seed: int) -> Noise:
    """Fixed inputs of every preview picture: the family's noise and a fixed real batch."""
    fixed = pipeline.sample_noise(n, torch.Generator(pipeline.device).manual_seed(seed))
    real = data.examples(n)
    return {**fixed, **{k: v.to(pipeline.device) for k, v in real.items()}}


def checkpoint_state(step: int, cfg: DictConfig, pipeline: Pipeline, updater: Updater, batches: Batches,
                     noise: Noise, best: dict | None = None) -> dict:
    """Everything a bit-exact continuation needs, as plain types (no pickle). Under torchrun
    every process calls it (the ranks' RNG states are gathered); rank 0 writes it."""
    return {
        "step": step,
        "family": cfg.model._target_,
        "pipeline": pipeline.state_dict(),
        "updater": updater.state_dict(),
        "data": batches.state_dict(),
        "rng": rng_state(),
        "world_size": distributed.world_size(),
        "rng_ranks": distributed.gather_objects(rng_state()) if distributed.active() else [],
        "sample_noise": noise,
        "best": best,  # the best evaluation so far (genrun.eval_loop.BestTracker.state)
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "config_raw": OmegaConf.to_container(cfg, resolve=False, enum_to_str=True),
    }


def restore(checkpoint: dict, pipeline: Pipeline, updater: Updater, batches: Batches) -> tuple[int, Noise]:
    """Load a checkpoint into freshly built objects; returns (step, preview noise)."""
    try:
        pipeline.load_state_dict(checkpoint["pipeline"])
        updater.load_state_dict(checkpoint.get("updater", {}))
        batches.load_state_dict(checkpoint["data"])
        set_rng_state(rng_of_this_process(checkpoint))
        noise = {k: v.to(pipeline.device) for k, v in checkpoint["sample_noise"].items()}
        return int(checkpoint["step"]), noise
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise GenrunError(f"the checkpoint does not fit this model ({type(exc).__name__}: {first})") from exc


def rng_of_this_process(checkpoint: dict) -> dict:
    """This rank's saved RNG state; a checkpoint of N processes resumed by M != N takes rank 0's."""
    saved, world = int(checkpoint.get("world_size", 1)), distributed.world_size()
    if saved == world:
        return checkpoint["rng_ranks"][distributed.rank()] if world > 1 else checkpoint["rng"]
    if distributed.rank() == 0:
        log.warning("the checkpoint was written by %d process(es) and resumes with %d: it continues from rank 0's "
                    "random state, so it is not bit-exact to a continuation with %d", saved, world, saved)
    return checkpoint["rng"]


def weights_in_sync(pipeline: Pipeline) -> bool:
    """Every process holds the same weights (a check of the gradient averaging): compares one
    float64 checksum per process; true in one process."""
    if not distributed.active():
        return True
    with torch.no_grad():
        checksum = float(sum(p.double().sum() for p in pipeline.nets.parameters()))
    return len(set(distributed.gather_objects(checksum))) == 1


def split_for_processes(pipeline: Pipeline, trainer: DictConfig) -> None:
    """Under torchrun: BatchNorm over the global batch when asked (CUDA), then each process its
    own random stream (noise differs between ranks; the weights, built before, do not)."""
    if not distributed.active():
        return
    if trainer.sync_batchnorm:
        if pipeline.device.type != "cuda":
            raise GenrunError("trainer.sync_batchnorm=true needs CUDA (torch's SyncBatchNorm); use false on the CPU")
        for net in pipeline.nets.values():
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    seed_everything(int(trainer.seed) + 7919 * (distributed.rank() + 1))


def warn_if_schedule_ends_early(checkpoint: dict, pipeline: Pipeline, max_steps: int) -> None:
    """A schedule keeps the length it started with: say so when a resume moves max_steps."""
    started_with = checkpoint.get("config", {}).get("trainer", {}).get("max_steps")
    if pipeline.schedulers and started_with is not None and started_with != max_steps:
        log.warning("trainer.max_steps=%d but the learning-rate schedule was built for %d steps and keeps "
                    "that length (e.g. scheduler=linear stays at its final rate after step %d)",
                    max_steps, started_with, started_with)


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (and CUDA allocations), in MiB."""
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = {"peak_rss_mib": rss_kib / 1024 if sys.platform != "darwin" else rss_kib / 2**20}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def final_metrics(cfg: DictConfig, result: LoopResult, pipeline: Pipeline, data: DataBundle,
                  evaluator: Evaluator, evaluation: Evaluation | None = None) -> dict[str, Any]:
    """metrics.json: the final step, losses, speed, memory, the configured metrics (with their
    real-vs-real floor and protocol) and the family's own metrics. `evaluation`: the loop's own
    evaluation of this very step, when it made one (the same numbers, not computed twice)."""
    metrics: dict[str, Any] = {
        "step": result.step,
        "status": f"stopped by {result.stopped_by}" if result.stopped_by else "completed",
        "time_s": round(result.seconds, 3),
        "steps_per_s": round(result.steps_done / max(result.seconds, 1e-9), 3),
        **{k: v for k, v in result.scalars.items()},
        **peak_memory(),
    }
    g = torch.Generator(pipeline.device).manual_seed(int(cfg.trainer.seed) + 1)
    if data.modes is not None:
        metrics.update(mode_metrics(pipeline.sample(MODE_SAMPLES, g), data.modes, data.sigma))
    metrics.update(pipeline.evaluate(data, g))
    evaluation = evaluation if evaluation is not None else evaluator(pipeline, data)
    metrics.update(evaluation.values)
    monitor = cfg.get("monitor", "auto")
    metrics["primary"] = auto_primary(metrics, pipeline) if monitor == "auto" else monitor
    metrics["floor"] = evaluation.floor
    metrics["protocol"] = {**evaluation.protocol, "skipped": evaluation.skipped, "seconds": evaluation.seconds}
    return metrics


def auto_primary(metrics: dict[str, Any], pipeline: Pipeline) -> str:
    """`monitor=auto`: reverse KL over the modes on 2D mixtures, else FID when it ran, else the IWAE
    bound when it ran, else the family's own. A key that ran but gave no number (no high-quality sample, a diverged model) stays the
    choice: the sweeper sees NaN, not a different metric."""
    return next((key for key in ("rkl", "fid", "iwae") if key in metrics), pipeline.primary_metric)


def hparams_of(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The run's settings for TensorBoard's HPARAMS tab, named as genrun-report names them: the
    group choices of its .hydra/hydra.yaml and the flat resolved config."""
    return {**group_choices(run_dir), **config_settings(cfg)}


def run(cfg: DictConfig, run_dir: Path, checkpoint: dict | None = None) -> dict[str, Any]:
    """Train the run described by `cfg` in `run_dir` (continuing `checkpoint` if given)."""
    check_ranges(cfg)
    trainer = cfg.trainer
    threads = set_threads(trainer.get("num_threads", "auto"))
    device = device_of_job(distributed.local_device(pick_device(trainer.device)))
    distributed.init_from_env(device.type)
    main = distributed.rank() == 0
    updater = Updater(device, trainer.precision, trainer.grad_clip)
    seed_everything(int(trainer.seed))
    data = build_data(cfg)
    pipeline = build_pipeline(cfg, device)
    if float(trainer.get("ema", 0.0)) > 0 and not pipeline.ema_sources:
        raise GenrunError(f"trainer.ema={trainer.ema}: model={config_name(cfg, 'model')} keeps no EMA copy "
                          "(families with EMA: gan, dcgan, mine); use trainer.ema=0")
    evaluator = build_evaluator(cfg, device)
    tracker = BestTracker(str(cfg.eval.best_by), {n: m.better for n, m in evaluator.metrics.items()},
                          evaluation_setup(cfg))
    if int(trainer.eval_every) > 0:
        tracker.check()
    split_for_processes(pipeline, trainer)
    prepare_for_speed(pipeline, bool(trainer.compile))
    workers = min(int(cfg.dataset.get("num_workers", 0)), threads)  # parallel jobs share the cores
    batches = Batches(data, int(trainer.batch_size), device, int(trainer.seed), workers,
                      distributed.rank(), distributed.world_size())
    if checkpoint is not None:
        start, noise = restore(checkpoint, pipeline, updater, batches)
        tracker.restore(checkpoint.get("best"))
        warn_if_schedule_ends_early(checkpoint, pipeline, int(trainer.max_steps))
    else:
        start = 0
        noise = preview_inputs(pipeline, data, preview_size(trainer, data), int(trainer.seed))
    reference = data.train[:5000] if data.modes is not None else None
    if main:
        remove_stale_temp_files(run_dir)  # metrics.json temp files of killed runs
    checkpoints = CheckpointDir(run_dir / "checkpoints", int(trainer.keep_last), clean=main)
    outputs = RunOutputs(run_dir, start, reference) if main else NoOutputs()
    if main:
        log.info("%s%s (device %s, %d process(es), %s, start step %d)", LOG_START, run_dir, device,
                 distributed.world_size(), type(pipeline).__name__, start)

    def save(step: int, best: bool = False) -> None:
        state = checkpoint_state(step, cfg, pipeline, updater, batches, noise, tracker.state())
        if main and best:
            checkpoints.save_best(state)
        elif main:
            checkpoints.save(state, step)

    periodic = PeriodicEvaluation(evaluator, pipeline, data, outputs, tracker, lambda step: save(step, best=True))
    try:
        result = fit(pipeline, batches, trainer, outputs, save, noise, start, updater, periodic)
        in_sync = weights_in_sync(pipeline)
        same_step = periodic.last[1] if periodic.last and periodic.last[0] == result.step else None
        metrics = final_metrics(cfg, result, pipeline, data, evaluator, same_step) if main else {}
        if main and int(trainer.eval_every) > 0:
            metrics["best"] = tracker.summary()
        if main and distributed.active():
            metrics.update({"world_size": distributed.world_size(), "weights_in_sync": in_sync})
        if main:
            metrics["num_threads"] = threads
        outputs.metrics(metrics)
        outputs.hparams(hparams_of(cfg, run_dir), metrics)
    except NonFiniteLoss as exc:
        outputs.close_quietly()
        last = f"{checkpoints.last} is the last good checkpoint" if checkpoints.last.exists() else "no checkpoint was written"
        raise GenrunError(f"training diverged: {exc}; stopped ({last})") from exc
    except BaseException as exc:
        outputs.close_quietly()  # the first error is the one to report
        failure = compile_failure(exc)
        if failure is not None:
            raise failure from exc
        raise
    outputs.close()
    if main:
        print_summary(run_dir, metrics)
    result.pass_on()  # e.g. submitit requeues the job now that its checkpoint is written
    if result.exit_code:
        raise SystemExit(result.exit_code)
    return metrics
