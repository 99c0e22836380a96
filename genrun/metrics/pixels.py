"""Full-reference image measures with the super-resolution convention: PSNR and SSIM per image.

Images are compared in [0, 1] (data range 1), as 8-bit images (outputs rounded to 1/255, as a
saved PNG would be), on the luma Y of YCbCr for colour images (ITU-R BT.601 as MATLAB's
rgb2ycbcr: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255), with `border` pixels cropped at
every edge (the scale factor in super-resolution). SSIM is Wang et al. 2004's: an 11x11 Gaussian
window of sigma 1.5, K1 = 0.01, K2 = 0.03, the mean of the map over the valid region (no
padding: Wang et al.'s MATLAB code and scikit-image's default). genrun's own implementation,
tested against torchmetrics' `structural_similarity_index_measure` map to 1e-5 over that region
(tests/test_translation.py; torchmetrics 1.9's own mean also takes the reflection-padded border,
so it differs near small images' edges). The window shrinks to the largest odd size that fits an
image smaller than 11 px (the protocol records it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Y_WEIGHTS = (65.481, 128.553, 24.966)
MAX_PSNR_MSE = 1e-10  # identical images: PSNR 100 dB, not infinity


def to_unit(x: Tensor, value_range: tuple[float, float], quantize: bool = True) -> Tensor:
    """Images in `value_range` -> [0, 1] (float64), rounded to 8 bits when `quantize`."""
    low, high = value_range
    unit = ((x.double() - low) / (high - low)).clamp(0, 1)
    return (unit * 255).round() / 255 if quantize else unit


def y_channel(x: Tensor) -> Tensor:
    """[N, 3, H, W] in [0, 1] -> [N, 1, H, W] luma Y in [16/255, 235/255]; one channel unchanged."""
    if x.shape[1] != 3:
        return x
    weights = torch.tensor(Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (16 + (x * weights).sum(1, keepdim=True)) / 255


def crop(x: Tensor, border: int) -> Tensor:
    return x[..., border:x.shape[-2] - border, border:x.shape[-1] - border] if border else x


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0, mask: Tensor | None = None) -> Tensor:
    """Per image: 10 log10(range^2 / MSE), the MSE over all values (or those where `mask` is 1)."""
    squared = (x.double() - y.double()).pow(2)
    if mask is None:
        mse = squared.flatten(1).mean(1)
    else:
        weights = mask.double().expand_as(squared)
        mse = (squared * weights).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(MAX_PSNR_MSE))


def gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The normalised 1D Gaussian of `size` taps (torchmetrics' and skimage's)."""
    taps = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(taps**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_window(height: int, width: int, window: int = 11) -> int:
    """The window: `window`, or the largest odd size that fits a smaller image."""
    fit = min(window, height, width)
    return fit if fit % 2 else fit - 1


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Per image: the mean SSIM (Wang et al. 2004, eq. 13) over channels and valid window positions,
    with Gaussian-weighted local means, variances and covariance."""
    x, y = x.double(), y.double()
    size = ssim_window(x.shape[-2], x.shape[-1], window)
    g = gaussian_window(size, sigma, x.dtype, x.device)
    channels = x.shape[1]
    kernel = (g.view(-1, 1) * g.view(1, -1)).expand(channels, 1, size, size)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(1)
