"""A run's state between processes and across time: what a checkpoint holds, how it is read
(older checkpoint versions upgraded), restored into fresh objects, and split between processes.

Layout of a checkpoint (version 2; all values are tensors, numbers, strings, lists or dicts):
    format, version, step, family (the model's _target_), pipeline {nets, optimizers, schedulers},
    updater {scalers}, data {epoch, pos}, rng, rng_ranks (every process's, under torchrun),
    world_size, sample_noise {name: tensor}, best {key, value, step, setup}, config (resolved),
    config_raw (with interpolations).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from genrun.data.bundle import Batches, DataBundle
from genrun.engine import distributed
from genrun.engine.checkpoint import VERSION, load_checkpoint
from genrun.engine.protocol import Noise
from genrun.engine.rng import rng_state, seed_everything, set_rng_state
from genrun.engine.updates import Updater
from genrun.errors import GenrunError
from genrun.pipelines.base import Pipeline
from genrun.runs import RENAMED_KEYS

log = logging.getLogger("genrun")

# Version 1 -> 2: the optimizer role that steps a decoder was called `generator`; metric keys renamed.
DECODER_ROLE_FAMILIES = ("genrun.pipelines.vae.VAEPipeline", "genrun.pipelines.cvae.CVAEPipeline",
                         "genrun.pipelines.aae.AAEPipeline")


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint file as today's version (older versions upgraded in memory; the file is untouched)."""
    checkpoint = load_checkpoint(path, map_location)
    if checkpoint["version"] == 1:
        checkpoint = upgrade_from_version_1(checkpoint)
    return checkpoint


def upgrade_from_version_1(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: a VAE's or AAE's decoder optimizer `generator` becomes `decoder` (its state
    and its config node), and a monitored `rkl`/`kl` becomes `kl_to_uniform`."""
    if checkpoint.get("family") in DECODER_ROLE_FAMILIES:
        for part in ("optimizers", "schedulers"):
            states = checkpoint["pipeline"].get(part, {})
            if "generator" in states:
                states["decoder"] = states.pop("generator")
        for key in ("config", "config_raw"):
            optimizer = checkpoint[key].get("optimizer", {})
            if "generator" in optimizer and "decoder" not in optimizer:
                optimizer["decoder"] = optimizer["generator"]
    for key in ("config", "config_raw"):
        config = checkpoint[key]
        if config.get("monitor") in RENAMED_KEYS:
            config["monitor"] = RENAMED_KEYS[config["monitor"]]
        evaluation = config.get("eval") or {}
        if evaluation.get("best_by") in RENAMED_KEYS:
            evaluation["best_by"] = RENAMED_KEYS[evaluation["best_by"]]
    return {**checkpoint, "version": VERSION}


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


def preview_inputs(pipeline: Pipeline, data: DataBundle, trainer: DictConfig) -> Noise:
    """Fixed inputs of every preview picture: the family's noise and a fixed real batch (copied,
    so a checkpoint holds these examples, not the training set they are a view of)."""
    n = int(trainer.sample_n) if trainer.sample_n is not None else 1024 if data.modes is not None else 64
    fixed = pipeline.sample_noise(n, torch.Generator(pipeline.device).manual_seed(int(trainer.seed)))
    real = data.examples(n)
    return {**fixed, **{k: v.to(pipeline.device).clone() for k, v in real.items()}}


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
