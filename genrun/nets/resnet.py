"""Residual translation networks: SRGAN's generator and critic (Ledig et al. 2017, fig. 4) and
CycleGAN's ResNet generator (Zhu et al. 2017, app. 7.2, after Johnson et al. 2016).

Both generators are built from one residual block (conv3-norm-act-conv3-norm plus the input).
SRResNet up-samples by sub-pixel convolution (Shi et al. 2016): a 3x3 convolution to 4x the
channels, then PixelShuffle(2), once per doubling (x2 and x4; any power of two).
"""

from __future__ import annotations

from torch import Tensor, nn

from genrun.errors import GenrunError
from genrun.nets.common import OutputRange
from genrun.nets.conv import norm_layer
from genrun.nets.layers import apply_spectral_norm
from genrun.ranges import Bounds, NonNegativeInt, PositiveInt


class ResidualBlock(nn.Module):
    """x + norm(conv3(act(norm(conv3(x))))): SRGAN's (batch norm, PReLU) or CycleGAN's (instance
    norm, ReLU, reflection padding)."""

    def __init__(self, channels: int, norm: str = "batch", act: str = "prelu", reflect: bool = False) -> None:
        super().__init__()
        pad = 0 if reflect else 1

        def conv() -> list[nn.Module]:
            return [*([nn.ReflectionPad2d(1)] if reflect else []), nn.Conv2d(channels, channels, 3, 1, pad)]

        activation = nn.PReLU(channels) if act == "prelu" else nn.ReLU()
        self.body = nn.Sequential(*conv(), norm_layer(norm, channels), activation, *conv(), norm_layer(norm, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def doublings(scale: int) -> int:
    """How many x2 sub-pixel layers make `scale`; other factors are an error."""
    k = scale.bit_length() - 1
    if scale < 2 or 2**k != scale:
        raise GenrunError(f"dataset.scale={scale}: SRGAN up-samples by sub-pixel convolutions of x2; valid: 2, 4, 8")
    return k


class SRResNet(nn.Module):
    """low-resolution [in_channels, s, s] -> [out_channels, scale*s, scale*s]: k9n64 + PReLU, `blocks`
    residual blocks, k3n64 + BN + the long skip, per doubling k3n256 + PixelShuffle(2) + PReLU, k9."""

    def __init__(self, in_channels: PositiveInt, out_channels: PositiveInt, scale: PositiveInt, width: PositiveInt = 64,
                 blocks: PositiveInt = 16, out_range: Bounds = (-1.0, 1.0)) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(in_channels, width, 9, 1, 4), nn.PReLU(width))
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width))
        up: list[nn.Module] = []
        for _ in range(doublings(scale)):
            up += [nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.tail = nn.Sequential(*up, nn.Conv2d(width, out_channels, 9, 1, 4), OutputRange(out_range))

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        return self.tail(h + self.body(h))


class SRGANDiscriminator(nn.Module):
    """image -> one logit: k3n64 + LeakyReLU, then 7 conv3 + BN + LeakyReLU blocks whose channels
    double every second block (64 -> 512) and whose stride alternates 2, 1, ..., then Dense(1024),
    LeakyReLU, Dense(1) (the paper's sigmoid is the loss's)."""

    def __init__(self, in_channels: PositiveInt, size: PositiveInt, width: PositiveInt = 64, dense: PositiveInt = 1024,
                 norm: str = "batch", spectral_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        channels, side = width, size
        for i in range(7):
            stride = 2 if i % 2 == 0 else 1
            out = width * 2 ** ((i + 1) // 2)
            layers += [nn.Conv2d(channels, out, 3, stride, 1, bias=norm == "none"), norm_layer(norm, out),
                       nn.LeakyReLU(0.2)]
            channels, side = out, (side - 1) // stride + 1
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, dense), nn.LeakyReLU(0.2),
                                  nn.Linear(dense, 1))
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: c7s1-w, `downsamplings` x (conv3 stride 2, channels x2), `blocks`
    residual blocks, as many transposed conv3 stride 2 back, c7s1 to the output; instance norm,
    ReLU, reflection padding. The image size must divide by 2^downsamplings."""

    def __init__(self, in_channels: PositiveInt, out_channels: PositiveInt, size: PositiveInt, width: PositiveInt = 64,
                 blocks: NonNegativeInt = 6, downsamplings: NonNegativeInt = 2, norm: str = "instance",
                 out_range: Bounds = (-1.0, 1.0)) -> None:
        super().__init__()
        if size % 2**downsamplings:
            raise GenrunError(f"model.generator.downsamplings={downsamplings}: the task's {size} px images do not "
                              f"divide by {2**downsamplings}")
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7), norm_layer(norm, width),
                                   nn.ReLU()]
        channels = width
        for _ in range(downsamplings):
            layers += [nn.Conv2d(channels, 2 * channels, 3, 2, 1), norm_layer(norm, 2 * channels), nn.ReLU()]
            channels *= 2
        layers += [ResidualBlock(channels, norm, "relu", reflect=True) for _ in range(blocks)]
        for _ in range(downsamplings):
            layers += [nn.ConvTranspose2d(channels, channels // 2, 3, 2, 1, output_padding=1),
                       norm_layer(norm, channels // 2), nn.ReLU()]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, 7), OutputRange(out_range)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
