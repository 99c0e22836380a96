"""MINE (Belghazi et al. 2018): estimate I(X; Z), alone or as GAN+MINE's generator regulariser.

Alone (`model=mine`), each example is a pair stacked as [2, *item] (x in row 0, z in row 1,
e.g. dataset=gaussians_corr); a step ascends the bound on one batch, with marginal pairs made
by shuffling z within the batch. As a regulariser (`model=gan +mine=dv`), the generator also
maximises beta * I(c; G(z)) with c the first `code_dim` entries of z (sec. 5.1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from genrun.data.bundle import Batch
from genrun.engine.protocol import Noise, OptimizerFactory, Phase
from genrun.errors import GenrunError
from genrun.losses.mine import MIObjective
from genrun.pipelines.base import Pipeline
from genrun.ranges import Decay, NonNegative, PositiveInt

Statistics = Callable[[Tensor, Tensor], Tensor]
EVAL_CHUNK = 65_536  # pairs per forward pass at evaluation
HEATMAP_SIDE, HEATMAP_EXTENT = 128, 3.0  # pictures: T over (x_1, z_1) in [-3, 3]^2


def statistics_values(statistics: Statistics, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """T on the joint pairs (x_i, z_i) and on marginal pairs (x_i, z_perm(i)), z shuffled in the batch."""
    shuffled = z[torch.randperm(z.shape[0], device=z.device)]
    return statistics(x, z), statistics(x, shuffled)


def add_optimizer_as(pipeline: Pipeline, name: str, settings_role: str, *nets: nn.Module) -> torch.optim.Optimizer:
    """Register an optimizer under `name` built with the `settings_role` entry of the optimizer config.

    Every optimizer config has a `mine` role (the default); `optimizer_role=discriminator`, say,
    trains T with that role's settings, while its own name keeps it apart from that role's
    optimizer in the checkpoint.
    """
    if name == settings_role:
        return pipeline.add_optimizer(name, *nets)
    factory = pipeline.optimizer_factories.get(settings_role)
    if not callable(factory):
        valid = ", ".join(k for k, v in pipeline.optimizer_factories.items() if callable(v))
        raise GenrunError(f"optimizer_role={settings_role!r}: the optimizer config has no such role (roles there: {valid})")
    if name in pipeline.optimizers:
        raise GenrunError(f"an optimizer named {name!r} is already registered")
    pipeline.optimizers[name] = factory([p for net in nets for p in net.parameters()])
    return pipeline.optimizers[name]


class MINEPipeline(Pipeline):
    generative = False  # an estimator: its pictures are heat maps of T, not samples of the data
    loss_kinds = ("mi",)
    primary_metric = "mi_estimate"  # the held-out estimate
    default_metrics = ("mi",)

    def __init__(
        self,
        statistics: nn.Module,
        loss: MIObjective,
        optimizers: dict[str, OptimizerFactory],
        device: torch.device | str = "cpu",
        optimizer_role: str = "mine",
        ema: Decay = 0.99,
        eval_shifts: PositiveInt = 8,
    ) -> None:
        super().__init__(loss, optimizers, device, ema=ema)
        if eval_shifts < 1:
            raise GenrunError(f"model.eval_shifts={eval_shifts}: must be >= 1")
        self.eval_shifts = eval_shifts
        self.statistics = self.add_net("statistics", statistics)
        # T's weights averaged over steps: SGD noise in T costs the bound ~Var(T - T*)/2, averaging removes most
        self.add_ema("statistics")
        state = loss.new_state()
        self.state = self.add_net("moving_average", state) if state is not None else None
        add_optimizer_as(self, "mine", optimizer_role, self.statistics)
        self.phases = [Phase("mine", ("mine",), self.bound_objective, after=self.update_ema)]

    def split(self, pairs: Tensor) -> tuple[Tensor, Tensor]:
        """[N, 2, *item] pairs -> x, z (each [N, *item]), checked against the network's sizes."""
        sizes = (getattr(self.statistics, "x_size", None), getattr(self.statistics, "z_size", None))
        if pairs.dim() < 2 or pairs.shape[1] != 2 or (None not in sizes and pairs[0, 0].numel() != sizes[0]):
            raise GenrunError(
                f"model=mine needs paired data [N, 2, dim] (e.g. dataset=gaussians_corr), got examples of "
                f"shape {list(pairs.shape[1:])}"
            )
        return pairs[:, 0], pairs[:, 1]

    def bound_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """T ascends the bound on one batch of pairs (marginal pairs: z shuffled in the batch)."""
        x, z = self.split(batch["x"])
        mi = self.loss.surrogate(*statistics_values(self.statistics, x, z), self.state)
        return -mi, {"mine/mi": mi}

    def values(self, x: Tensor, z: Tensor) -> Tensor:
        """The averaged T (when `ema` > 0) on many pairs, chunk by chunk (eval mode, no gradients)."""
        statistics = self.sampling_net("statistics")
        with self.evaluating():
            return torch.cat([statistics(a, b) for a, b in zip(x.split(EVAL_CHUNK), z.split(EVAL_CHUNK), strict=True)])

    def held_out_estimate(self, pairs: Tensor) -> float:
        """The bound of the averaged T on held-out pairs; marginal pairs are the shifts (x_i, z_{i+k})."""
        x, z = self.split(pairs.to(self.device))
        if len(x) < 2:
            raise GenrunError(f"the held-out estimate needs at least 2 pairs, got {len(x)}")
        shifts = range(1, min(self.eval_shifts, len(x) - 1) + 1)
        t_marginal = torch.cat([self.values(x, z.roll(k, 0)) for k in shifts])
        return float(self.loss.bound(self.values(x, z), t_marginal))

    def sample_noise(self, n: int, rng: torch.Generator | None = None) -> Noise:
        """MINE has no generator and no noise: the pictures are a fixed grid over (x_1, z_1)."""
        axis = torch.linspace(-HEATMAP_EXTENT, HEATMAP_EXTENT, HEATMAP_SIDE, device=self.device)
        z1, x1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # rows: z_1 from top (+) to bottom (-)
        return {"grid": torch.stack([x1.flatten(), z1.flatten()], 1)}

    def generate(self, noise: Noise) -> Tensor:
        """A [1, 1, H, W] heat map of T (averaged) over the grid, x_1 across and z_1 up (other coordinates 0).

        T approximates log dP/dQ up to a constant: bright where T deems (x_1, z_1) a joint pair.
        Scaled from its range on the grid to [-1, 1] for the image writer.
        """
        grid = noise["grid"]
        size = getattr(self.statistics, "x_size", 1)
        x = torch.zeros(len(grid), size, device=self.device)
        z = torch.zeros_like(x)
        x[:, 0], z[:, 0] = grid[:, 0], grid[:, 1]
        t = self.values(x, z)
        side = int(round(len(grid) ** 0.5))
        low, high = t.min(), t.max()
        return (2 * (t - low) / (high - low).clamp_min(1e-12) - 1).view(1, 1, side, side)


class MINERegularizer:
    """GAN+MINE (Belghazi et al. 2018, sec. 5.1): G also maximises beta * I(c; G(z)) against mode dropping.

    Plugs into GANPipeline's `regularizers`: the generator's phase adds -beta times T's MI
    estimate on its (c, G(z)) pairs, whose gradient reaches G through T (frozen in that phase);
    then this regulariser's own phase trains T on the same pairs, detached.
    """

    def __init__(
        self,
        statistics: nn.Module,
        objective: MIObjective,
        beta: NonNegative = 1.0,
        code_dim: PositiveInt | None = None,
        optimizer_role: str = "mine",
    ) -> None:
        if beta < 0:
            raise GenrunError(f"model.regularizers.mine.beta={beta}: must be >= 0")
        self.statistics, self.objective, self.beta = statistics, objective, beta
        self.code_dim, self.optimizer_role = code_dim, optimizer_role
        self.state: nn.Module | None = None
        self.pairs: tuple[Tensor, Tensor] | None = None  # the generator phase's (c, G(z)), detached

    def attach(self, pipeline: Pipeline) -> None:
        z_dim = getattr(pipeline, "z_dim", None)
        if self.code_dim is not None and z_dim is not None and not 1 <= self.code_dim <= z_dim:
            raise GenrunError(
                f"model.regularizers.mine.code_dim={self.code_dim}: must be between 1 and model.z_dim={z_dim}"
            )
        self.statistics = pipeline.add_net("mine_statistics", self.statistics)
        state = self.objective.new_state()
        if state is not None:
            self.state = pipeline.add_net("mine_moving_average", state)
        add_optimizer_as(pipeline, "mine", self.optimizer_role, self.statistics)

    def generator_terms(self, z: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """-beta I(c; G(z)) as T estimates it: G minimises it, so it maximises the information."""
        code = z[:, : self.code_dim] if self.code_dim is not None else z
        self.pairs = (code.detach(), fake.detach())
        g_mi = self.objective.surrogate(*statistics_values(self.statistics, code, fake), self.state, update=False)
        return {"mine/g_term": -self.beta * g_mi}

    def phases(self) -> list[Phase]:
        return [Phase("mine_regularizer", ("mine",), self.statistics_objective, fresh_batch=False)]

    def statistics_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """T ascends the bound on the generator phase's pairs (logged as mine/mi)."""
        if self.pairs is None:
            raise GenrunError("the GAN+MINE statistics phase runs after the generator's, which records its pairs")
        mi = self.objective.surrogate(*statistics_values(self.statistics, *self.pairs), self.state)
        return -mi, {"mine/mi": mi}
