"""Mode coverage on 2D Gaussian mixtures, as in PacGAN (Lin et al. 2018, sec. 5.1).

A sample is high quality when it lies within 3 sigma of its nearest mode in every
coordinate; `modes` counts modes with at least one high-quality sample, `hq` is the
percentage of high-quality samples, and `rkl` is KL(histogram of high-quality samples
over the modes || uniform), in nats.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mode_metrics(samples: Tensor, modes: Tensor, sigma: float) -> dict[str, float | int | None]:
    """Mode metrics of `samples` [N, 2] against mixture centres `modes` [K, 2]."""
    samples, modes = samples.detach().float().cpu(), modes.float().cpu()
    finite = torch.isfinite(samples).all(1)
    nearest = torch.cdist(samples.nan_to_num(), modes).argmin(1)
    close = ((samples - modes[nearest]).abs() <= 3 * sigma).all(1) & finite
    counts = torch.bincount(nearest[close], minlength=len(modes)).double()
    n_hq = int(counts.sum())
    rkl = None
    if n_hq > 0:
        p = counts / n_hq
        nz = p > 0
        rkl = float((p[nz] * (p[nz] * len(modes)).log()).sum())
    return {
        "modes": int((counts > 0).sum()),
        "hq": 100.0 * n_hq / len(samples),
        "rkl": rkl,
    }

