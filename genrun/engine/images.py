"""Pictures of samples: image grids, scatter plots of 2D samples over the data, and
scatter plots of labelled 2D points (a latent space coloured by class).

A picture is a tensor: [N, C, H, W] images (a square-ish grid of ceil(sqrt(N)) columns),
[N, 2] points, or [N, 3] points with a class id in the last column (< 0: grey background).
The layout helpers at the end build such tensors for families' previews.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor


def image_grid(x: Tensor, value_range: tuple[float, float] = (-1.0, 1.0), min_cell: int = 64,
               columns: int | None = None) -> np.ndarray:
    """[N, C, H, W] images -> HxWx3 uint8 grid (square-ish, or `columns` wide), small images upscaled for viewing."""
    from torchvision.utils import make_grid

    x = x.detach().float().cpu()
    if x.shape[-1] < min_cell:
        x = torch.nn.functional.interpolate(x, scale_factor=math.ceil(min_cell / x.shape[-1]), mode="nearest")
    nrow = columns or max(1, math.ceil(math.sqrt(x.shape[0])))
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


# Tableau's 10 categorical colours; more classes cycle through them.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
BACKGROUND = (200, 200, 200)


def labelled_scatter(points: Tensor, size: int = 512) -> np.ndarray:
    """[N, 3] = (x, y, class id) -> HxWx3 uint8: one colour per class, id < 0 in light grey below."""
    pts = points.detach().float().cpu()
    pts = pts[torch.isfinite(pts).all(1)]
    if not len(pts):
        return np.full((size, size, 3), 255, dtype=np.uint8)
    xy, ids = pts[:, :2], pts[:, 2].round().long()
    lo, hi = xy.quantile(0.001, dim=0), xy.quantile(0.999, dim=0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.15 + 1e-6
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    uv = ((xy - centre) / (2 * half) + 0.5).tolist()
    for background in (True, False):
        for (u, v), k in zip(uv, ids.tolist(), strict=True):
            if (k < 0) != background:
                continue
            colour, r = (BACKGROUND, 1.0) if k < 0 else (PALETTE[k % len(PALETTE)], 2.0)
            px, py = u * size, (1 - v) * size
            draw.ellipse((px - r, py - r, px + r, py + r), fill=colour)
    return np.asarray(img)


def picture(samples: Tensor, reference: Tensor | None = None) -> np.ndarray:
    """The right picture for the tensor: a grid for images, a scatter plot for 2D points
    (over `reference` data), a coloured scatter for [N, 3] labelled points."""
    if samples.dim() == 4:
        return image_grid(samples)
    if samples.dim() == 2 and samples.shape[1] == 3:
        return labelled_scatter(samples)
    return scatter_plot(samples, reference)


# -- layouts for previews (tensors in, tensors out) ----------------------------------------
def square_indices(side: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(row, column) of each cell of a side x side grid, row-major: one row per class."""
    cells = torch.arange(side * side, device=device)
    return cells // side, cells % side


def paired_rows(top: Tensor, bottom: Tensor) -> Tensor:
    """Images in rows of `side`, each row of `top` with the same images of `bottom` below it.

    Uses the largest even square grid that fits (e.g. inputs above their reconstructions).
    """
    n = min(len(top), len(bottom))
    side = 2 * max(1, math.isqrt(n // 2))  # side * side / 2 <= n images on top
    rows = [t for i in range(0, side * side // 2, side) for t in (top[i:i + side], bottom[i:i + side])]
    return torch.cat(rows)


def labelled_points(points: Tensor, labels: Tensor) -> Tensor:
    """[N, 2] points and [N] class ids (< 0: background) -> the [N, 3] picture tensor."""
    return torch.cat([points.float(), labels.to(points.device, torch.float32).view(-1, 1)], 1)


def save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
