"""Sample-quality metrics in a feature space: FID, KID, precision/recall, density/coverage.

Each one is a thin class over genrun.metrics.distances (where the math and its tests live),
chosen in config by `configs/metrics/<name>.yaml`.
"""

from __future__ import annotations

from typing import Any

from genrun.metrics.base import EvalContext, Metric
from genrun.metrics.distances import density_coverage, fid, kid, precision_recall
from genrun.ranges import PositiveInt


class FID(Metric):
    """Fréchet distance of Gaussians fitted to real and generated features (Heusel et al. 2017)."""

    name = "fid"
    better = {"fid": "lower"}

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return {"fid": fid(ctx.real_features, ctx.fake_features)}


class KID(Metric):
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, mean and std over subsets."""

    name = "kid"
    better = {"kid": "lower", "kid_std": "lower"}

    def __init__(self, subsets: PositiveInt = 100, subset_size: PositiveInt = 1000) -> None:
        self.subsets, self.subset_size = subsets, subset_size

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        mean, std = kid(ctx.real_features, ctx.fake_features, self.subsets, self.subset_size, ctx.seed)
        return {"kid": mean, "kid_std": std}

    def protocol(self) -> dict[str, Any]:
        return {"subsets": self.subsets, "subset_size": self.subset_size}


class PrecisionRecall(Metric):
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-th neighbour balls."""

    name = "pr"
    better = {"precision": "higher", "recall": "higher"}

    def __init__(self, k: PositiveInt = 3) -> None:
        self.k = k

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return precision_recall(ctx.real_features, ctx.fake_features, self.k)

    def protocol(self) -> dict[str, Any]:
        return {"k": self.k}


class DensityCoverage(Metric):
    """Density and coverage (Naeem et al. 2020): precision/recall robust to outliers."""

    name = "dc"
    better = {"density": "higher", "coverage": "higher"}

    def __init__(self, k: PositiveInt = 5) -> None:
        self.k = k

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return density_coverage(ctx.real_features, ctx.fake_features, self.k)

    def protocol(self) -> dict[str, Any]:
        return {"k": self.k}
