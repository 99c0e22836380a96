"""Conditional VAE (Sohn et al. 2015): q(z | x, y) and p(x | z, y), trained on the ELBO.

The VAE family (vae.py) with the class label as an extra input of both networks: the
label is embedded and joins the encoder's features and the decoder's code (nets/
conditional.py). `encoder` and `decoder` in the config are the plain networks (`_partial_`)
the family wraps. Previews add one row per class over the same codes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory
from genrun.losses.elbo import ELBO
from genrun.nets.conditional import JointCritic, LabelledGenerator, NetFactory
from genrun.pipelines.cgan import class_rows, labels_of, require_classes
from genrun.pipelines.vae import VAEPipeline
from genrun.ranges import Bounds, NonNegativeInt, PositiveInt


class CVAEPipeline(VAEPipeline):
    default_metrics = ("elbo", "recon")
    codes = None  # q(z | x, y) is given the label: a probe of its codes would read it back

    def __init__(
        self,
        encoder: NetFactory,
        decoder: NetFactory,
        loss: ELBO,
        optimizers: Mapping[str, OptimizerFactory],
        num_classes: NonNegativeInt,
        device: torch.device | str = "cpu",
        z_dim: PositiveInt = 16,
        embed_dim: PositiveInt = 16,
        features: PositiveInt = 128,
        likelihood: str = "auto",
        data_range: Bounds = None,
        binarize: str = "none",
    ) -> None:
        require_classes(num_classes, "cvae")
        self.num_classes = num_classes
        q = JointCritic.labelled(encoder, num_classes, embed_dim, features=features, hidden=features,
                                 out_dim=2 * z_dim)
        p = LabelledGenerator(decoder, z_dim, num_classes, embed_dim)
        super().__init__(q, p, loss, optimizers, device, z_dim, likelihood, data_range, binarize)

    def condition(self, batch: Batch) -> tuple[Tensor, ...]:
        return (labels_of(batch, "cvae"),)

    def noise_condition(self, noise: Noise) -> tuple[Tensor, ...]:
        return (noise["class"],)

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        classes = torch.randint(self.num_classes, (n,), device=self.device, generator=rng)
        return {**super().sample_noise(n, rng), "class": classes}

    def latent_of(self, batch: Batch) -> Noise:
        """The decoder's inputs for data: posterior means and the examples' labels."""
        return {**super().latent_of(batch), "class": labels_of(batch, "cvae")}

    def previews(self, fixed: Noise) -> dict[str, Tensor]:
        """The VAE's pictures, plus one row per class over the same codes (images only)."""
        pictures = super().previews(fixed)
        if fixed["x"].dim() == 4:
            z, y = class_rows(fixed["z"], self.num_classes)
            pictures["classes"] = self.generate({"z": z, "class": y})
        return pictures
