"""Pictures of samples: image grids, and scatter plots of 2D samples over the data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor


def image_grid(x: Tensor, value_range: tuple[float, float] = (-1.0, 1.0), min_cell: int = 64) -> np.ndarray:
    """[N, C, H, W] images -> HxWx3 uint8 grid (square-ish), small images upscaled for viewing."""
    from torchvision.utils import make_grid

    x = x.detach().float().cpu()
    if x.shape[-1] < min_cell:
        x = torch.nn.functional.interpolate(x, scale_factor=math.ceil(min_cell / x.shape[-1]), mode="nearest")
    nrow = max(1, math.ceil(math.sqrt(x.shape[0])))
    grid = make_grid(x, nrow=nrow, padding=2, normalize=True, value_range=value_range, pad_value=1.0)
    return (grid.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def scatter_plot(samples: Tensor, reference: Tensor | None = None, size: int = 512) -> np.ndarray:
    """2D samples (blue) over reference data (grey) on a shared square frame -> HxWx3 uint8."""
    pts = samples.detach().float().cpu()
    ref = reference.detach().float().cpu() if reference is not None else pts
    finite = pts[torch.isfinite(pts).all(1)]
    frame = torch.cat([ref, finite]) if len(finite) else ref
    lo, hi = frame.quantile(0.001, dim=0), frame.quantile(0.999, dim=0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.15 + 1e-6
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def to_px(p: Tensor) -> list[tuple[float, float]]:
        uv = (p - centre) / (2 * half) + 0.5
        return [(u * size, (1 - v) * size) for u, v in uv.tolist()]

    if reference is not None:
        for u, v in to_px(ref[:5000]):
            draw.point((u, v), fill=(170, 170, 170))
    for u, v in to_px(finite):
        draw.ellipse((u - 1.5, v - 1.5, u + 1.5, v + 1.5), fill=(31, 90, 200))
    return np.asarray(img)


def picture(samples: Tensor, reference: Tensor | None = None) -> np.ndarray:
    """The right picture for the data: a grid for images, a scatter plot for 2D points."""
    if samples.dim() == 4:
        return image_grid(samples)
    return scatter_plot(samples, reference)


def save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
