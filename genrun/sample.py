"""genrun-sample: load a trained run on any device and write samples (picture or raw tensor), or a
latent-space picture (`mode=`, genrun.latent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genrun.arguments import boolean, group, index_list
from genrun.errors import GenrunError

USAGE = ("genrun-sample run=PATH [n=64] [out=FILE.png|.pt|.npy] [seed=0] [device=cpu] [ema=true|false] "
         "[input=FOLDER|train|validation|test] "
         "[mode=grid|interpolate|arithmetic|traverse|reconstruct|classes|project] [steps=10] [path=linear|slerp] "
         "[from=samples|examples] [examples=I,J,...] [a=I,J b=... c=...] [dims=D,...] [span=2] [image=FILE] "
         "[iterations=300] [restarts=4]")
SUFFIXES = (".png", ".pt", ".npy")
# the options of the latent modes (genrun.latent)
MODE_KEYS = {"mode": str, "steps": int, "path": str, "from": str, "examples": index_list, "a": group, "b": group,
             "c": group, "dims": index_list, "span": float, "image": str, "iterations": int, "restarts": int}
KEYS = {"run": str, "n": int, "out": str, "seed": int, "device": str, "ema": boolean, "input": str, **MODE_KEYS}


def sample_command(
    run: str, n: int | None = None, out: str | None = None, seed: int = 0, device: str = "cpu",
    ema: bool | None = None, input: str | None = None, mode: str = "grid", **options: Any
) -> Path:
    """Write `n` samples of the run at `run` to `out` (default: <run>/samples/sample_seed<seed>.png), or
    with `mode` other than grid the picture of a latent-space tool (genrun.latent; default
    <run>/samples/<mode>_seed<seed>.png, its tensors in a .pt beside it).

    `ema`: sample from the EMA weights (default: when the run kept them) or from the raw nets.
    `input`: a translation run translates the images of a folder or a split (default: test) instead
    (genrun.translate; default out: <run>/samples/translated_<input>.png).
    """
    import numpy as np
    import torch

    from genrun.engine.images import picture, save_png
    from genrun.latent import check_options, grid_samples, write_mode
    from genrun.paths import run_folder_of
    from genrun.saved_runs import load_run

    n = check_options(mode, n, options)
    target = Path(out) if out else run_folder_of(run) / "samples" / f"{'sample' if mode == 'grid' else mode}_seed{seed}.png"
    if target.suffix not in SUFFIXES:
        raise GenrunError(f"out={str(target)!r}: the file type must be one of {', '.join(SUFFIXES)}")
    pipeline, checkpoint = load_run(run, device)
    if input is not None or (mode == "grid" and callable(getattr(pipeline, "translate", None))):
        from genrun.translate import translate_command

        return translate_command(pipeline, checkpoint, input or "test", n, Path(out) if out else None, run)
    if ema and not pipeline.ema_sources:
        raise GenrunError(
            f"ema=true but the run at {run} kept no EMA weights (trainer.ema=0, or a family without EMA); "
            "use ema=false"
        )
    pipeline.use_ema = ema is not False
    if hasattr(pipeline, "progress"):  # a family that samples step by step (PixelCNN) shows how far it is
        from genrun.engine.progress import SlowWork

        pipeline.progress = SlowWork(f"sampling {n}" if mode == "grid" else f"mode={mode}")
    rng = torch.Generator(pipeline.device).manual_seed(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    weights = " (EMA weights)" if pipeline.use_ema and pipeline.ema_sources else ""
    if mode != "grid":
        write_mode(mode, pipeline, checkpoint, run, rng, n, options, target)
        print(f"wrote mode={mode} of step {checkpoint['step']}{weights} to {target}")
        return target
    samples = grid_samples(pipeline, checkpoint, run, n, rng)
    if target.suffix == ".png":
        save_png(picture(samples), target)
    elif target.suffix == ".pt":
        torch.save(samples, target)
    else:
        np.save(target, samples.numpy())
    print(f"wrote {n} samples of step {checkpoint['step']}{weights} to {target}")
    return target
