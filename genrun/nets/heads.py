"""A critic body shared by two heads: InfoGAN's D (real/fake) and Q (latent codes)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


class SharedBody(nn.Module):
    """D(x) and Q(c | x) on one body (Chen et al. 2016, sec. 6: Q costs one extra head).

    `forward` is the critic alone (a plain critic for the objective's regularizers);
    `both` returns (logits, code parameters) from a single pass through the body.
    """

    def __init__(self, body: Callable[..., nn.Module], q_dim: int, features: int = 128, hidden: int = 128) -> None:
        super().__init__()
        self.body = body(out_dim=features)
        self.d_head = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(features, 1))
        self.q_head = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(features, hidden), nn.LeakyReLU(0.2),
                                    nn.Linear(hidden, q_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.d_head(self.body(x))

    def critic_layers(self) -> nn.ModuleList:
        """The critic alone (body and D head, not Q's head): what a Lipschitz constraint such as
        WGAN's clipping applies to. A view of the same modules, not registered as a child."""
        return nn.ModuleList([self.body, self.d_head])

    def both(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(x)
        return self.d_head(h), self.q_head(h)
