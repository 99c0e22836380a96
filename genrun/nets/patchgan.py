"""The PatchGAN critic of pix2pix and CycleGAN (Isola et al. 2017, sec. 3.2.2; Zhu et al. 2017).

C64-C128-C256-C512 with 4x4 convolutions: `n_layers` stride-2 layers, one stride-1 layer, then a
stride-1 convolution to one logit per patch; LeakyReLU 0.2, a norm after every layer but the
first. Each logit sees a patch of the input: the receptive field is 16, 34 and 70 px for
n_layers = 1, 2, 3 (`receptive_field`; the paper's 70x70 PatchGAN is n_layers=3 on 256 px).
Adversarial losses take the mean over patches. pix2pix's critic sees the input and the output
(or target) side by side along the channels.
"""

from __future__ import annotations

from torch import Tensor, nn

from genrun.errors import GenrunError
from genrun.nets.common import dcgan_init
from genrun.nets.conv import norm_layer
from genrun.nets.layers import apply_spectral_norm
from genrun.ranges import PositiveInt


def receptive_field(n_layers: int) -> int:
    """Pixels one output logit sees: 4x4 kernels, n_layers of stride 2 then two of stride 1."""
    field = 1
    for stride in reversed([2] * n_layers + [1, 1]):
        field = (field - 1) * stride + 4
    return field


def smallest_image(n_layers: int) -> int:
    """The smallest image that still gives a logit: size / 2^n_layers - 2 >= 1."""
    return 3 * 2**n_layers


class PatchGAN(nn.Module):
    """image(s) [in_channels, S, S] -> logits [1, S/2^n - 2, S/2^n - 2], one per patch."""

    def __init__(self, in_channels: PositiveInt, size: PositiveInt, width: PositiveInt = 64, n_layers: PositiveInt = 3,
                 norm: str = "batch", spectral_norm: bool = False) -> None:
        super().__init__()
        if not 1 <= n_layers <= 3:
            raise GenrunError(f"model.discriminator.n_layers={n_layers}: valid: 1, 2, 3 (receptive fields "
                              f"{receptive_field(1)}, {receptive_field(2)}, {receptive_field(3)} px)")
        if size < smallest_image(n_layers):
            fits = [n for n in (1, 2, 3) if size >= smallest_image(n)]
            raise GenrunError(f"model.discriminator.n_layers={n_layers} needs images of at least "
                              f"{smallest_image(n_layers)} px; the task's are {size} px (valid here: "
                              f"{', '.join(map(str, fits)) or 'none: use larger images'})")
        self.n_layers, self.receptive_field = n_layers, receptive_field(n_layers)
        chans = [width * 2 ** min(i, 3) for i in range(n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(chans[i - 1], chans[i], 4, stride, 1, bias=norm != "batch"),
                       norm_layer(norm, chans[i]), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(chans[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
