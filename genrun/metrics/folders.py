"""Metrics between two folders of images (e.g. samples saved by another code base and a data set).

Images are read as torch-fidelity reads them (the files of the folder itself, not of its
subfolders, ending in .png/.jpg/.jpeg, sorted, decoded by PIL to 8-bit RGB), so a number
computed here is comparable with `fidelity --input1 A --input2 B`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from genrun.errors import GenrunError
from genrun.metrics.base import FeatureSpace, in_chunks
from genrun.metrics.distances import fid

EXTENSIONS = (".png", ".jpg", ".jpeg")  # torch-fidelity's samples_find_ext


def read_images(folder: str | Path) -> Tensor:
    """The images of `folder` as uint8 [N, 3, H, W] (all of one size, as torch-fidelity batches them)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise GenrunError(f"{folder}: no such folder")
    files = sorted(str(p.resolve()) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise GenrunError(f"{folder} holds no {', '.join(EXTENSIONS)} images")
    arrays = []
    for file in files:
        with Image.open(file) as image:
            arrays.append(np.asarray(image.convert("RGB")))
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise GenrunError(f"{folder}: the images differ in size ({', '.join(sorted(map(str, sizes)))}); resize them to one")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def folders_fid(first: str | Path, second: str | Path, space: FeatureSpace) -> float:
    """FID between the images of two folders in `space` (prepared by the caller)."""
    return fid(in_chunks(space.features, read_images(first)), in_chunks(space.features, read_images(second)))
