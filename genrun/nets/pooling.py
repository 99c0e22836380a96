"""A critic's activations as features for a probe (Radford et al. 2016, sec. 5.1: every layer's
activations max-pooled to a 4 x 4 grid, flattened and concatenated), and the same critic
randomly initialised, the probe's reference for what training added."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize


def is_activation(module: nn.Module) -> bool:
    """A nonlinearity of torch.nn (ReLU, LeakyReLU, Softplus, ...): where a layer's features are read."""
    return type(module).__module__ == "torch.nn.modules.activation"


def pooled(x: Tensor, grid: int) -> Tensor:
    """A layer's output [N, C, H, W] max-pooled to at most grid x grid and flattened; [N, D] as is."""
    if x.dim() == 4 and x.shape[-1] > grid:
        x = F.adaptive_max_pool2d(x, grid)
    return x.flatten(1)


@torch.no_grad()
def pooled_activations(net: nn.Module, x: Tensor, grid: int = 4) -> Tensor:
    """The outputs of every activation module of `net` on x, each pooled to grid x grid, side by side."""
    outputs: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _inputs, out: outputs.append(pooled(out, grid)))
             for m in net.modules() if is_activation(m)]
    try:
        net(x)
    finally:
        for hook in hooks:
            hook.remove()
    if not outputs:
        raise ValueError(f"{type(net).__name__} has no activation module to read features from")
    return torch.cat(outputs, 1)


def reinitialised(net: nn.Module, seed: int) -> nn.Module:
    """A copy of `net` with every layer's parameters drawn afresh (PyTorch's default initialisation,
    from `seed`; weight/spectral normalisations folded into plain weights first) and fresh
    normalisation statistics: the same architecture before any training."""
    fresh = copy.deepcopy(net)
    for module in fresh.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    finally:
        torch.random.set_rng_state(generator_state)
    return fresh
