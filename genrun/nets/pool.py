"""CycleGAN's image history pool (Zhu et al. 2017, sec. 4; Shrivastava et al. 2017).

The critics learn from generated images of the last steps, not only the newest: until the pool
holds `size` images every new one goes in and comes back; then each new image, with probability
1/2, takes the place of a random stored one, which the critic sees instead. The pool is a module
of buffers (kept with the networks, so a checkpoint holds it) and draws from torch's RNG (whose
state a checkpoint holds): a resumed run continues bit-exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genrun.ranges import NonNegativeInt, Shape


class ImagePool(nn.Module):
    """A buffer of up to `size` generated images of `shape`."""

    def __init__(self, shape: Shape, size: NonNegativeInt = 50) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        """The images the critic sees for this batch of new ones (same shape and dtype)."""
        if self.size == 0:
            return images
        out = images.detach().clone()
        for i, image in enumerate(images.detach()):
            filled = int(self.count)
            if filled < self.size:
                self.images[filled] = image.float()
                self.count += 1
            elif float(torch.rand(())) < 0.5:
                j = int(torch.randint(self.size, ()))
                out[i] = self.images[j].to(out.dtype)
                self.images[j] = image.float()
        return out
