"""Normalising flows for images: Real NVP's multi-scale architecture (Dinh et al. 2017) and NICE
(Dinh et al. 2014), built from the couplings of genrun.nets.couplings and the masks of
genrun.nets.masks.

Each flow maps an example x (in the logit space of the dequantised pixels) to z of the same
number of dimensions, flattened, with log |det dz/dx| per example, and back with `inverse(z)`.

Normalisation (`norm`): `actnorm` (default) is Glow's per-channel affine layer (Kingma & Dhariwal
2018) whose scale and shift are initialised from the first training batch and then learned: the
density of an example is the same function in training and evaluation, does not depend on the
other examples of its batch, and sampling needs no batch. `batchnorm` is Real NVP's batch
normalisation (sec. 3.7), which normalises by the batch's statistics in training and by running
averages in evaluation: the density that is trained is not the one evaluated (nor the one
sampled), the complaint most raised against the reference implementations, and it depends on
the batch size and, under torchrun, on each process's part of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genrun.errors import GenrunError
from genrun.nets.common import numel
from genrun.nets.couplings import Coupling, MLPConditioner, Norm, ResidualConditioner, wide
from genrun.nets.masks import alternating_mask, channel_mask, checkerboard_mask
from genrun.ranges import NonNegativeInt, PositiveInt, Shape

NORMS = ("actnorm", "batchnorm")


def mean_over_processes(t: Tensor) -> Tensor:
    """t averaged over the processes of a torchrun run (itself in one process), so that a
    data-dependent initialisation gives every process the same weights."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


class ActNorm(nn.Module):
    """y = (x + b) * exp(log_s) per channel, b and log_s set on the first training batch so that y
    has zero mean and unit variance per channel (Kingma & Dhariwal 2018, sec. 3.1); then learned.
    Whether it was initialised is a saved buffer, so a resumed run does not initialise again."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        x = wide(x)
        moments = torch.stack([x.mean((0, 2, 3)), x.pow(2).mean((0, 2, 3))])
        mean, square = mean_over_processes(moments)
        std = (square - mean.pow(2)).clamp(min=0).add(1e-6).sqrt()
        self.bias.copy_(-mean.view_as(self.bias))
        self.log_scale.copy_(-std.log().view_as(self.log_scale))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        y = (x + self.bias) * torch.exp(self.log_scale)
        log_det = wide(self.log_scale).sum() * (x.shape[2] * x.shape[3])
        return y, log_det.expand(len(x))

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class BatchNormFlow(nn.Module):
    """Real NVP's batch normalisation as a flow layer (Dinh et al. 2017, sec. 3.7 and app. E):
    y = (x - mean) / sqrt(var + eps) * exp(log_gamma) + beta per channel, with the batch's
    statistics in training (log-det through them) and running averages in evaluation and inversion."""

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-4) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("running_mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("running_var", torch.ones(1, channels, 1, 1))

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        mean = x.mean((0, 2, 3), keepdim=True)
        var = (x - mean).pow(2).mean((0, 2, 3), keepdim=True)
        with torch.no_grad():
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(var.to(self.running_var.dtype), self.momentum)
        return mean, var

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = self.statistics(x)
        y = (x - mean) * torch.rsqrt(var + self.eps) * torch.exp(self.log_gamma) + self.beta
        log_det = wide(self.log_gamma - 0.5 * torch.log(var + self.eps)).sum() * (x.shape[2] * x.shape[3])
        return y, log_det.expand(len(x))

    def inverse(self, y: Tensor) -> Tensor:
        return (y - self.beta) * torch.exp(-self.log_gamma) * torch.sqrt(self.running_var + self.eps) + self.running_mean


class Squeeze(nn.Module):
    """[C, H, W] -> [4C, H/2, W/2]: each 2x2 square becomes 4 channels (Dinh et al. 2017, sec. 3.6);
    a permutation, log-det 0."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        y = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, wide(x.new_zeros(b))

    def inverse(self, y: Tensor) -> Tensor:
        b, c, h, w = y.shape
        return y.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


class DiagonalScaling(nn.Module):
    """NICE's last layer: z = exp(s) * x per dimension, log-det sum(s) (Dinh et al. 2014, sec. 3.3)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, dims))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(len(x))

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale)


class FlowSequence(nn.Module):
    """Flow layers applied in order; log-determinants add up (in at least float32)."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_det = wide(x.new_zeros(len(x)))
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y


class FirstOutput(nn.Module):
    """A flow layer used as a plain layer (its output without the log-det), e.g. ActNorm inside an s/t net."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)[0]


def flow_norm(kind: str) -> nn.Module:
    """The flow layer that normalises between couplings, by `model.norm`."""
    if kind not in NORMS:
        raise GenrunError(f"model.flow.norm={kind!r}: valid: {', '.join(NORMS)}")
    return ActNorm if kind == "actnorm" else BatchNormFlow


def conditioner_norm(kind: str) -> Norm:
    """The normalisation inside the s/t networks, of the same kind as the flow's."""
    if kind == "actnorm":
        return lambda channels: FirstOutput(ActNorm(channels))
    return nn.BatchNorm2d


def check_squeezable(shape: Sequence[int], scales: int) -> None:
    """H and W must halve `scales - 1` times and leave at least 2 x 2 for the last checkerboard."""
    if len(shape) != 3:
        raise GenrunError(f"Real NVP models images [C, H, W]; this data has shape {list(shape)}")
    _, h, w = shape
    factor = 2 ** (scales - 1)
    if h % factor or w % factor or h // factor < 2 or w // factor < 2:
        fits = max(s for s in range(1, 12) if h % 2 ** (s - 1) == 0 and w % 2 ** (s - 1) == 0
                   and h // 2 ** (s - 1) >= 2 and w // 2 ** (s - 1) >= 2) if min(h, w) >= 2 else 0
        raise GenrunError(f"model.flow.scales={scales} squeezes {h}x{w} images {scales - 1} time(s), which needs sides "
                          f"divisible by {factor} leaving at least 2x2; valid here: model.flow.scales <= {fits} "
                          f"(or a dataset.image_size divisible by {factor}, e.g. {max(2, -(-h // factor)) * factor})")


class RealNVP(nn.Module):
    """Real NVP's multi-scale flow (Dinh et al. 2017, sec. 3.6).

    Each scale but the last: `checkerboard` affine couplings with alternating checkerboard masks,
    a squeeze, `channelwise` couplings with alternating channel masks, then half of the channels
    are factored out (they are part of z from here on). The last scale: `final` checkerboard
    couplings. Every coupling is followed by the normalisation `norm`; the s/t networks are
    residual nets of `blocks` blocks of `width` maps. H and W must divide by 2^(scales - 1).
    """

    def __init__(self, shape: Shape, scales: PositiveInt = 2, width: PositiveInt = 64, blocks: NonNegativeInt = 2,
                 norm: str = "actnorm", checkerboard: PositiveInt = 3, channelwise: PositiveInt = 3,
                 final: PositiveInt = 4) -> None:
        super().__init__()
        check_squeezable(shape, scales)
        self.shape = tuple(int(s) for s in shape)
        layer_norm, st_norm = flow_norm(norm), conditioner_norm(norm)
        c, h, w = self.shape
        self.scales, self.part_shapes = nn.ModuleList(), []

        def coupling(mask: Tensor, channels: int) -> list[nn.Module]:
            st = ResidualConditioner(channels, width, blocks, st_norm)
            return [Coupling(mask, st, (1, channels, 1, 1)), layer_norm(channels)]

        for scale in range(scales):
            last = scale == scales - 1
            layers = [m for i in range(final if last else checkerboard)
                      for m in coupling(checkerboard_mask(h, w, i % 2), c)]
            if not last:
                layers.append(Squeeze())
                c, h, w = 4 * c, h // 2, w // 2
                layers += [m for i in range(channelwise) for m in coupling(channel_mask(c, i % 2), c)]
                self.part_shapes.append((c - c // 2, h, w))
                c = c // 2
            self.scales.append(FlowSequence(layers))
        self.part_shapes.append((c, h, w))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        parts, log_det = [], wide(x.new_zeros(len(x)))
        for i, scale in enumerate(self.scales):
            x, ld = scale(x)
            log_det = log_det + ld
            if i < len(self.scales) - 1:
                keep = x.shape[1] // 2
                parts.append(x[:, keep:].flatten(1))
                x = x[:, :keep]
        parts.append(x.flatten(1))
        return torch.cat(parts, 1), log_det

    def inverse(self, z: Tensor) -> Tensor:
        sizes = [math.prod(s) for s in self.part_shapes]
        parts = [p.reshape(len(z), *s) for p, s in zip(z.split(sizes, 1), self.part_shapes, strict=True)]
        x = parts[-1]
        for i in reversed(range(len(self.scales))):
            if i < len(self.scales) - 1:
                x = torch.cat([x, parts[i]], 1)
            x = self.scales[i].inverse(x)
        return x


class NICE(nn.Module):
    """NICE (Dinh et al. 2014, sec. 5.1): `couplings` additive coupling layers over the flattened
    example, alternating which half (even or odd indices) they change, each with an MLP of
    `depth` hidden layers of `width` units, then the diagonal scaling layer."""

    def __init__(self, shape: Shape, couplings: PositiveInt = 4, width: PositiveInt = 1000,
                 depth: PositiveInt = 5) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        dims = numel(self.shape)
        self.layers = FlowSequence([
            *[Coupling(alternating_mask(dims, i % 2), MLPConditioner(dims, width, depth), None)
              for i in range(couplings)],
            DiagonalScaling(dims),
        ])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.layers(x.flatten(1))

    def inverse(self, z: Tensor) -> Tensor:
        return self.layers.inverse(z).reshape(len(z), *self.shape)
