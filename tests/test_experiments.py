"""Every experiment preset composes, builds its pipeline, and the 2D toy presets train."""

from __future__ import annotations

import math
from importlib.resources import files

import pytest
import torch

from genrun.build import build_pipeline
from genrun.train import run
from tests.conftest import compose_config

EXPERIMENTS = sorted(e.name[: -len(".yaml")] for e in files("genrun.configs").joinpath("experiment").iterdir()
                     if e.name.endswith(".yaml"))
TOY = [name for name in EXPERIMENTS if name.endswith(("_ring8", "_grid25"))]


def test_the_toy_presets_are_all_there():
    assert {"pacgan_ring8", "pacgan_grid25", "veegan_grid25", "best_ring8", "best_grid25"} <= set(TOY)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_builds_its_pipeline(name):
    cfg = compose_config(f"experiment={name}", "trainer.device=cpu")
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    assert pipeline.nets and pipeline.optimizers
    if name in TOY:
        assert cfg.dataset.name == name.rsplit("_", 1)[1]
        disc = pipeline.nets["discriminator"]
        assert disc.pack == cfg.model.pack  # D takes pack samples at once
        assert int(cfg.trainer.batch_size) % int(cfg.model.pack) == 0
        first = next(m for m in disc.modules() if isinstance(m, torch.nn.Linear))
        assert first.in_features == 2 * cfg.model.pack


@pytest.mark.parametrize("name", ["pacgan_ring8", "pacgan_grid25"])
@pytest.mark.parametrize("pack", [1, 3])
def test_pacgan_presets_take_any_packing(name, pack):
    cfg = compose_config(f"experiment={name}", f"model.pack={pack}", f"trainer.batch_size={100 * pack}")
    disc = build_pipeline(cfg, torch.device("cpu")).nets["discriminator"]
    assert disc(torch.zeros(5, 2 * pack)).shape == (5, 1)


def test_pacgan_presets_follow_the_paper():
    cfg = compose_config("experiment=pacgan_grid25")
    g, d = cfg.model.generator, cfg.model.discriminator
    assert (cfg.model.z_dim, g.width, g.depth, g.batchnorm, d.width, d.depth) == (2, 400, 4, True, 200, 3)
    assert (cfg.optimizer.lr, list(cfg.optimizer.betas), cfg.trainer.batch_size, cfg.model.pack) == (
        1e-4, [0.8, 0.999], 400, 4)
    assert compose_config("experiment=pacgan_ring8").model.pack == 2


@pytest.mark.parametrize("name", TOY)
def test_toy_presets_train_a_few_steps(tmp_path, name):
    cfg = compose_config(f"experiment={name}", "trainer.device=cpu", "trainer.max_steps=2", "trainer.log_every=1",
                         f"trainer.batch_size={4 * compose_config(f'experiment={name}').model.pack}")
    metrics = run(cfg, tmp_path)
    assert metrics["step"] == 2
    assert math.isfinite(metrics["loss/d"]) and math.isfinite(metrics["loss/g"])
    assert {"modes", "hq", "kl_to_uniform"} <= set(metrics) and 0 <= metrics["hq"] <= 100
