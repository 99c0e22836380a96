"""Translation tasks: how an input image is made from a target image, and what shape each has.

A paired task takes every image of a source set as a target and makes its input from it by a
named transform (`dataset.task`); every transform works on 8-bit pixels read as [0, 1] ("unit"
values) and is deterministic (random ones draw from a generator seeded by the dataset's seed):
- `edges`: the target's luma, Sobel gradient magnitude (per pixel, replicate padding) above
  `edge_threshold`: white edges on black, one channel;
- `lowres`: bicubic down-sampling (antialiased, as MATLAB's imresize) by `scale`;
- `masked`: a hole (the centre square of side `mask_size`, or `blocks` random squares of that
  side per image) filled with the training targets' mean pixel, as Pathak et al. 2016 do;
- `grey2colour`: the target's luma (BT.601) of a colour target; a grey source is tinted first
  (each image its own random hue at full saturation: ink colour x grey level);
- `inverted`: 1 - the target.
`TaskSpec` gives the input's and the target's shapes from the dataset's keys, so that the
translation families size their networks from the task (configs/dataset/paired.yaml).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genrun.errors import GenrunError
from genrun.ranges import PositiveInt, UnitInterval

TASKS = ("edges", "lowres", "masked", "grey2colour", "inverted")
UNPAIRED_TRANSFORMS = ("inverted", "tinted", "edges")  # dataset=unpaired dataset.target=<one of these>
MASKS = ("centre", "blocks")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


class TaskSpec:
    """The shapes of a translation task: `task` is a paired transform (TASKS), `unpaired` (two
    domains of the same shape) or `folders` (a user's pairs: input size and channels given)."""

    def __init__(self, task: str, channels: PositiveInt, image_size: PositiveInt, scale: PositiveInt = 1,
                 input_channels: PositiveInt | None = None, input_size: PositiveInt | None = None) -> None:
        if task not in (*TASKS, "unpaired", "folders"):
            raise GenrunError(f"dataset.task={task!r}: valid: {', '.join(TASKS)}")
        self.task, self.channels, self.image_size, self.scale = task, int(channels), int(image_size), int(scale)
        if task == "lowres":
            check_scale(self.scale, self.image_size)
        if task == "grey2colour" and self.channels != 3:
            raise GenrunError(f"dataset.task=grey2colour makes colour targets: set dataset.channels=3, not "
                              f"{self.channels} (a grey source such as mnist is tinted)")
        self.input_channels = int(input_channels or self.default_input_channels())
        self.input_size = int(input_size or (self.image_size // self.scale if task == "lowres" else self.image_size))

    def default_input_channels(self) -> int:
        return 1 if self.task in ("edges", "grey2colour") else self.channels

    @property
    def paired(self) -> bool:
        """Whether each target has its own input (False: two unpaired domains)."""
        return self.task != "unpaired"

    @property
    def masked(self) -> bool:
        """Whether batches carry a hole `mask` (task=masked)."""
        return self.task == "masked"

    @property
    def border(self) -> int:
        """Pixels cropped at each edge before PSNR/SSIM: the scale factor for super-resolution."""
        return self.scale if self.task == "lowres" else 0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.input_channels, self.input_size, self.input_size

    @property
    def target_shape(self) -> tuple[int, int, int]:
        return self.channels, self.image_size, self.image_size

    def __repr__(self) -> str:
        return f"TaskSpec({self.task}: {list(self.input_shape)} -> {list(self.target_shape)})"


def check_scale(scale: int, image_size: int) -> None:
    """Super-resolution needs a factor >= 2 that divides the image size."""
    if scale < 2 or image_size % scale:
        raise GenrunError(f"dataset.scale={scale}: the low-resolution input is image_size / scale pixels, so the "
                          f"scale must be >= 2 and divide dataset.image_size={image_size} "
                          f"(valid here: {', '.join(str(k) for k in range(2, image_size + 1) if image_size % k == 0)})")


# -- pixels ----------------------------------------------------------------------------------
def unit(x: Tensor) -> Tensor:
    """uint8 pixels -> float in [0, 1]."""
    return x.float() / 255.0


def to_pixels(x: Tensor) -> Tensor:
    """[0, 1] floats -> uint8 pixels (rounded, as a saved 8-bit image would be)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def luma(x: Tensor) -> Tensor:
    """[N, 3, H, W] -> [N, 1, H, W] BT.601 luma; one channel is returned as it is."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def with_channels(x: Tensor, channels: int) -> Tensor:
    """Grey <-> colour: one channel repeated to three, three reduced to their luma."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    if channels == 1:
        return luma(x)
    raise GenrunError(f"cannot turn {x.shape[1]}-channel images into {channels}-channel ones")


# -- the transforms (unit values in, unit values out) ------------------------------------------
def gradient_magnitude(x: Tensor) -> Tensor:
    """The luma's gradient magnitude, Sobel / 8: intensity change per pixel, [N, 1, H, W]."""
    grey = F.pad(luma(x), (1, 1, 1, 1), mode="replicate")
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device) / 8
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
    return F.conv2d(grey, kernels).pow(2).sum(1, keepdim=True).sqrt()


def edge_inputs(x: Tensor, threshold: UnitInterval) -> Tensor:
    """1 where an image's gradient magnitude exceeds `threshold`; refused when most images would have no edge: a
    threshold in intensity change per pixel that suits sharp images misses the soft edges of images
    up-sampled from a low resolution (scikit-learn's 8 px digits at 32 px), and blank inputs would
    train a model that ignores them."""
    magnitude = gradient_magnitude(x)
    steepest = magnitude.flatten(1).amax(1)
    blank = float((steepest <= threshold).float().mean())
    if blank > 0.5:
        typical = float(steepest.median())
        raise GenrunError(f"dataset.edge_threshold={threshold}: {blank:.0%} of the images have no edge above it "
                          f"(their steepest change per pixel is {typical:.3f} at the median, at {x.shape[-1]} px): "
                          f"valid: below that, e.g. dataset.edge_threshold={typical / 2:.2g}")
    return (magnitude > threshold).to(x.dtype)


def downsample(x: Tensor, scale: int) -> Tensor:
    """Bicubic down-sampling with antialiasing (the SRGAN protocol's MATLAB imresize), clamped to [0, 1]."""
    size = x.shape[-1] // scale
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def upsample(x: Tensor, size: int) -> Tensor:
    """Bicubic up-sampling to `size` pixels (the super-resolution baseline), clamped to [0, 1]."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def centre_mask(n: int, image_size: int, mask_size: int) -> Tensor:
    """[n, 1, S, S] uint8: 1 in the centre square of side `mask_size`."""
    mask = torch.zeros(n, 1, image_size, image_size, dtype=torch.uint8)
    start = (image_size - mask_size) // 2
    mask[..., start:start + mask_size, start:start + mask_size] = 1
    return mask


def block_masks(n: int, image_size: int, mask_size: int, blocks: int, generator: torch.Generator) -> Tensor:
    """[n, 1, S, S] uint8: the union of `blocks` squares of side `mask_size` at uniform positions
    (Pathak et al. 2016's random blocks), drawn from `generator`."""
    corners = torch.randint(0, image_size - mask_size + 1, (n, blocks, 2), generator=generator)
    rows = torch.arange(image_size).view(1, 1, image_size)
    inside_rows = (rows >= corners[..., :1]) & (rows < corners[..., :1] + mask_size)  # [n, blocks, S]
    inside_cols = (rows >= corners[..., 1:]) & (rows < corners[..., 1:] + mask_size)
    mask = (inside_rows.unsqueeze(-1) & inside_cols.unsqueeze(-2)).any(1, keepdim=True)
    return mask.to(torch.uint8)


def check_mask(mask: str, mask_size: int, image_size: int) -> None:
    """The hole must be a known kind and leave context around it."""
    if mask not in MASKS:
        raise GenrunError(f"dataset.mask={mask!r}: valid: {', '.join(MASKS)}")
    if not 1 <= mask_size < image_size:
        raise GenrunError(f"dataset.mask_size={mask_size} does not fit dataset.image_size={image_size}: the hole "
                          f"must leave context around it (valid: 1 to {image_size - 1})")


def fill_holes(x: Tensor, mask: Tensor, fill: Tensor) -> Tensor:
    """x with the pixels under `mask` set to `fill` (one value per channel)."""
    m = mask.to(x.dtype)
    return x * (1 - m) + fill.view(1, -1, 1, 1).to(x.dtype) * m


def hue_colours(n: int, generator: torch.Generator) -> Tensor:
    """[n, 3] RGB colours of uniform random hue at full saturation and value (HSV -> RGB)."""
    hue = torch.rand(n, generator=generator) * 6
    k = (torch.tensor([5.0, 3.0, 1.0]) + hue.view(-1, 1)) % 6
    return 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def tint(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each image's grey level times its own random colour: [N, 1|3, H, W] -> [N, 3, H, W]."""
    return luma(x) * hue_colours(len(x), generator).view(-1, 3, 1, 1).to(x.dtype)


def task_seed(seed: int, split: str, what: int = 0) -> torch.Generator:
    """The generator of one split's random transform (tints, blocks, halves): a function of the
    dataset's seed and the split only, so every run builds the same task."""
    code = {"train": 1, "test": 2}.get(split, 3)
    return torch.Generator().manual_seed(seed * 1_000_003 + code * 101 + what)

