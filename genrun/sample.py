"""genrun-sample: load a trained run on any device and write samples (picture or raw tensor)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from genrun.errors import GenrunError

USAGE = "genrun-sample run=PATH [n=64] [out=FILE.png|.pt|.npy] [seed=0] [device=cpu] [ema=true|false]"
SUFFIXES = (".png", ".pt", ".npy")


def boolean(value: str) -> bool:
    """true/false (also yes/no, 1/0), any case."""
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if value.lower() not in words:
        raise ValueError(value)
    return words[value.lower()]


KEYS = {"run": str, "n": int, "out": str, "seed": int, "device": str, "ema": boolean}


def parse_args(argv: list[str], keys: dict[str, Callable[[str], Any]] = KEYS, usage: str = USAGE) -> dict[str, Any]:
    """key=value arguments, typed by `keys`; unknown keys and bad values are clear errors."""
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


def load_run(path: str, device: str = "cpu"):
    """Rebuild a run's pipeline from its checkpoint (config included) on `device`."""
    from omegaconf import OmegaConf

    from genrun.engine.checkpoint import load_checkpoint
    from genrun.paths import find_checkpoint
    from genrun.train import build_pipeline, pick_device

    checkpoint = load_checkpoint(find_checkpoint(path), map_location="cpu")
    cfg = OmegaConf.create(checkpoint["config_raw"])
    torch_device = pick_device(device)
    pipeline = build_pipeline(cfg, torch_device)
    pipeline.load_state_dict(checkpoint["pipeline"], optimizers=False)
    return pipeline, checkpoint


def sample_command(
    run: str, n: int = 64, out: str | None = None, seed: int = 0, device: str = "cpu", ema: bool | None = None
) -> Path:
    """Write `n` samples of the run at `run` to `out` (default: <run>/samples/sample_seed<seed>.png).

    `ema`: sample from the EMA weights (default: when the run kept them) or from the raw nets.
    """
    import numpy as np
    import torch

    from genrun.engine.images import picture, save_png
    from genrun.paths import run_folder_of

    if n < 1:
        raise GenrunError(f"n={n}: must be >= 1")
    target = Path(out) if out else run_folder_of(run) / "samples" / f"sample_seed{seed}.png"
    if target.suffix not in SUFFIXES:
        raise GenrunError(f"out={str(target)!r}: the file type must be one of {', '.join(SUFFIXES)}")
    pipeline, checkpoint = load_run(run, device)
    if ema and not pipeline.ema_sources:
        raise GenrunError(
            f"ema=true but the run at {run} kept no EMA weights (trainer.ema=0, or a family without EMA); "
            "use ema=false"
        )
    pipeline.use_ema = ema is not False
    samples = pipeline.sample(n, torch.Generator(pipeline.device).manual_seed(seed)).cpu()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".png":
        save_png(picture(samples), target)
    elif target.suffix == ".pt":
        torch.save(samples, target)
    else:
        np.save(target, samples.numpy())
    weights = " (EMA weights)" if pipeline.use_ema and pipeline.ema_sources else ""
    print(f"wrote {n} samples of step {checkpoint['step']}{weights} to {target}")
    return target
