"""genrun-sample on a translation run (model=pix2pix, cyclegan, srgan, srresnet, context_encoder):
translate the images of a folder, or a split of the run's dataset, with the trained model.

`input=FOLDER` reads every image below the folder (sorted by path, the first n), resized and
centre-cropped to the model's input size and channels; `input=train|validation|test` takes the
first n examples of that split of the run's own dataset (rebuilt from its config), with their
targets when the data is paired. A .png is a grid of rows: inputs, their outputs and, where they
exist, their targets; a .pt or .npy file holds the outputs (in the data's range).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genrun.errors import GenrunError

SPLITS = ("train", "validation", "test")
CHUNK = 500  # images translated at once


def translation_inputs(source: str, pipeline: Any, checkpoint: dict[str, Any], n: int) -> tuple[dict, Tensor | None]:
    """(a batch with the inputs, the targets or None) of a split of the run's dataset or a folder."""
    if source in SPLITS:
        from omegaconf import OmegaConf

        from genrun.build import build_data

        data = build_data(OmegaConf.create(checkpoint["config_raw"]))
        if not data.has(source) or data.inputs is None:
            valid = ", ".join(s for s in SPLITS if data.has(s))
            raise GenrunError(f"input={source}: the run's dataset has no such split of inputs (valid: {valid} or a folder)")
        batch = data.examples(n, source)
        return batch, batch["x"] if data.inputs.aligned else None
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise GenrunError(f"input={source}: neither a folder of images nor a split ({', '.join(SPLITS)})")
    if pipeline.task.masked:
        raise GenrunError(f"input={source}: a context encoder fills the holes of its dataset's masks; translate a split "
                          "(input=test), whose inputs carry them")
    return {"input": folder_images(folder, pipeline.task.input_size, pipeline.task.input_channels, n)}, None


def folder_images(folder: Path, size: int, channels: int, n: int) -> Tensor:
    """The first n images below `folder` as model inputs in [-1, 1]."""
    from genrun.data.pairs import read_files
    from genrun.data.vision import IMAGE_SUFFIXES

    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:n]
    if not paths:
        raise GenrunError(f"input={folder}: holds no images (looked for {' '.join(IMAGE_SUFFIXES)})")
    return read_files(paths, size, channels).float() / 127.5 - 1


def translate_command(pipeline: Any, checkpoint: dict[str, Any], source: str, n: int, target: Path | None,
                      run: str) -> Path:
    """Write the translations of `source` (a folder or a split) by the model of the run at `run` to
    `target` (default: <run>/samples/translated_<split or folder name>.png)."""
    import numpy as np

    from genrun.engine.images import picture, save_png
    from genrun.paths import run_folder_of
    from genrun.pipelines.translation import translation_rows

    target = target or run_folder_of(run) / "samples" / f"translated_{Path(source).name}.png"
    if not callable(getattr(pipeline, "translate", None)):
        raise GenrunError(f"input={source}: the run's model ({type(pipeline).__name__}) does not translate images "
                          "(model=pix2pix, cyclegan, srgan, srresnet or context_encoder do)")
    batch, targets = translation_inputs(source, pipeline, checkpoint, n)
    size = len(batch["input"])
    outputs = torch.cat([pipeline.translate({k: v[i:i + CHUNK].to(pipeline.device) for k, v in batch.items()}).float().cpu()
                         for i in range(0, size, CHUNK)])
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".png":
        save_png(picture(translation_rows(batch["input"], outputs, targets)), target)
    elif target.suffix == ".pt":
        torch.save(outputs, target)
    else:
        np.save(target, outputs.numpy())
    rows = "input | output | target" if targets is not None else "input | output"
    print(f"wrote {len(outputs)} translations ({rows}) of {source} by step {checkpoint['step']} to {target}")
    return target
