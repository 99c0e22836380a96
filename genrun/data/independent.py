"""Independent sources and their mixtures, for adversarial independence (Brakel & Bengio 2017).

`independent_sources` draws `sources` independent, non-Gaussian signals (uniform, Laplace, a sine of
uniform phase, a two-component mixture, a centred exponential, Student's t with 5 degrees of
freedom, then again with other parameters), each standardised, and mixes them: `linear`, x = A s,
or `post_nonlinear`, x = tanh(A s) (each channel through its own nonlinearity after the linear mix,
the paper's PNL case). A is a random matrix with unit-norm rows, redrawn until well conditioned.
Everything comes from a generator seeded with `seed`. The examples are the mixtures; their labels
are the true sources (float, [N, sources]), which only the metric reads (metrics=[independence]).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.errors import GenrunError
from genrun.ranges import PositiveInt, Seed

MIXINGS = ("linear", "post_nonlinear")
MAX_CONDITION = 10.0  # the mixing matrix is redrawn until its condition number is below this


def source_signal(kind: int, n: int, g: torch.Generator) -> Tensor:
    """n draws of the kind-th source distribution (kinds cycle through six families), standardised."""
    u = torch.rand(n, generator=g)
    family, variant = kind % 6, kind // 6
    if family == 0:
        s = u
    elif family == 1:
        s = torch.distributions.Laplace(0.0, 1.0).icdf(u.clamp(1e-6, 1 - 1e-6))
    elif family == 2:
        s = torch.sin(2 * math.pi * u * (1 + variant))
    elif family == 3:
        s = torch.where(u < 0.5 + 0.1 * variant, -1.5, 1.5) + 0.5 * torch.randn(n, generator=g)
    elif family == 4:
        s = -torch.log1p(-u.clamp(max=1 - 1e-6))
    else:
        s = student_t(n, 5 + variant, g)
    return (s - s.mean()) / s.std()


def student_t(n: int, dof: int, g: torch.Generator) -> Tensor:
    """Student's t: a Gaussian over the root of a chi-square (sum of dof squared Gaussians) / dof."""
    chi2 = torch.randn(n, dof, generator=g).pow(2).sum(1)
    return torch.randn(n, generator=g) / torch.sqrt(chi2 / dof)


def mixing_matrix(k: int, g: torch.Generator) -> Tensor:
    """A random k x k matrix with unit-norm rows and condition number below MAX_CONDITION."""
    for _ in range(1000):
        a = torch.randn(k, k, generator=g)
        a = a / a.norm(dim=1, keepdim=True)
        if float(torch.linalg.cond(a)) < MAX_CONDITION:
            return a
    raise GenrunError(f"dataset.sources={k}: no well-conditioned mixing matrix found")


def independent_sources(sources: PositiveInt = 6, mixing: str = "linear", size: PositiveInt = 20_000,
                        test_size: PositiveInt = 5_000, seed: Seed = 0) -> DataBundle:
    """`size` training and `test_size` held-out mixtures [N, sources], labelled with their sources."""
    if mixing not in MIXINGS:
        raise GenrunError(f"dataset.mixing={mixing!r}: valid: {', '.join(MIXINGS)}")
    if sources < 2:
        raise GenrunError(f"dataset.sources={sources}: independence needs at least 2 sources")
    g = torch.Generator().manual_seed(seed)
    n = size + test_size
    s = torch.stack([source_signal(k, n, g) for k in range(sources)], 1)
    x = s @ mixing_matrix(sources, g).T
    if mixing == "post_nonlinear":
        x = torch.tanh(x)
    return DataBundle(train=x[:size].contiguous(), labels=s[:size].contiguous(), test=x[size:].contiguous(),
                      test_labels=s[size:].contiguous())
