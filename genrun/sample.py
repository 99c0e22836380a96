"""genrun-sample: load a trained run on any device and write samples (picture or raw tensor)."""

from __future__ import annotations

from pathlib import Path

from genrun.arguments import boolean
from genrun.errors import GenrunError

USAGE = ("genrun-sample run=PATH [n=64] [out=FILE.png|.pt|.npy] [seed=0] [device=cpu] [ema=true|false] "
         "[input=FOLDER|train|validation|test]")
SUFFIXES = (".png", ".pt", ".npy")
KEYS = {"run": str, "n": int, "out": str, "seed": int, "device": str, "ema": boolean, "input": str}


def sample_command(
    run: str, n: int = 64, out: str | None = None, seed: int = 0, device: str = "cpu", ema: bool | None = None,
    input: str | None = None,
) -> Path:
    """Write `n` samples of the run at `run` to `out` (default: <run>/samples/sample_seed<seed>.png).

    `ema`: sample from the EMA weights (default: when the run kept them) or from the raw nets.
    `input`: a translation run translates the images of a folder or a split (default: test) instead
    (genrun.translate; default out: <run>/samples/translated_<input>.png).
    """
    import numpy as np
    import torch

    from genrun.engine.images import picture, save_png
    from genrun.paths import run_folder_of
    from genrun.saved_runs import load_run

    if n < 1:
        raise GenrunError(f"n={n}: must be >= 1")
    target = Path(out) if out else run_folder_of(run) / "samples" / f"sample_seed{seed}.png"
    if target.suffix not in SUFFIXES:
        raise GenrunError(f"out={str(target)!r}: the file type must be one of {', '.join(SUFFIXES)}")
    pipeline, checkpoint = load_run(run, device)
    if input is not None or callable(getattr(pipeline, "translate", None)):
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

        pipeline.progress = SlowWork(f"sampling {n}")
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
