"""Every numeric config key has a declared valid range, and a value outside it is one clear line."""

from __future__ import annotations

from importlib.resources import files

import pytest

from genrun.errors import GenrunError
from genrun.ranges import Range
from genrun.schema import check_ranges, source_key, undeclared_numeric_keys
from tests.conftest import compose_config

# Settings another option needs to compose and build (a family with its data, a root folder).
PARTNERS = {
    ("model", "mine"): ["dataset=gaussians_corr"],
    ("dataset", "gaussians_corr"): ["model=mine"],
    ("loss", "mine_dv"): ["model=mine", "dataset=gaussians_corr"],
    ("loss", "mine_f"): ["model=mine", "dataset=gaussians_corr"],
    ("loss", "elbo"): ["model=vae"],
    ("dataset", "image_folder"): ["dataset.root=/tmp"],
    ("mine", "dv"): ["model=gan"],
    ("mine", "f"): ["model=gan"],
}


def options() -> list[list[str]]:
    """One override list per option of every config group (with what it needs beside it)."""
    cases = []
    for group in ("dataset", "loss", "model", "optimizer", "scheduler", "trainer", "experiment", "mine", "eval",
                  "features", "metrics"):
        for entry in sorted(files("genrun.configs").joinpath(group).iterdir(), key=lambda e: e.name):
            name = entry.name.removesuffix(".yaml")
            if entry.name.endswith(".yaml") and not name.endswith("_schema"):
                choice = {"mine": f"+mine={name}", "metrics": f"metrics=[{name}]"}.get(group, f"{group}={name}")
                cases.append([choice, *PARTNERS.get((group, name), [])])
    cases += [["model=aae", "model.prior=mixture", "model.z_dim=2"], ["model=aae", "model.prior=uniform"]]
    return cases


@pytest.mark.parametrize("overrides", options(), ids=lambda o: " ".join(o))
def test_every_numeric_key_of_every_option_has_a_valid_range(overrides):
    cfg = compose_config(*overrides)
    assert undeclared_numeric_keys(cfg) == []
    check_ranges(cfg)  # the shipped values are valid


OUT_OF_RANGE = [
    (["trainer.max_steps=-1"], "trainer.max_steps=-1: must be a positive integer (>= 1)"),
    (["model.z_dim=0"], "model.z_dim=0: must be a positive integer (>= 1)"),
    (["model=gan", "model.generator.width=0"], "model.generator.width=0: must be a positive integer (>= 1)"),
    (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size=0: must be a positive integer (>= 1)"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1: must be a finite number >= 0 (used as optimizer.generator.lr)"),
    (["optimizer.discriminator.betas=[0.5,1.0]"], "optimizer.discriminator.betas[1]=1.0: must be a finite number in [0, 1)"),
    (["dataset.image_size=0"], "dataset.image_size=0: must be a positive integer (>= 1)"),
    (["model=gan", "dataset=ring8", "dataset.source.sigma=0"], "dataset.source.sigma=0: must be a finite number > 0"),
    (["loss=wgan_gp", "loss.lambda_gp=-1"], "loss.lambda_gp=-1: must be a finite number >= 0"),
    (["loss=lsgan", "loss.a=inf"], "loss.a=inf: must be a finite number"),
    (["model.generator.width=abc"], "model.generator.width='abc': must be a positive integer (>= 1)"),
    (["model.generator.width=2.5"], "model.generator.width=2.5: must be a positive integer (>= 1)"),
    (["trainer.ema=1.0"], "trainer.ema=1.0: must be a finite number in [0, 1)"),
    (["eval.n_fake=0"], "eval.n_fake=0: must be a positive integer (>= 1)"),
    (["metrics=[kid]", "metrics.kid.subsets=0"], "metrics.kid.subsets=0: must be a positive integer (>= 1)"),
    (["model=mine", "dataset=gaussians_corr", "dataset.rho=1.0"], "dataset.rho=1.0: must be a finite number in (-1, 1)"),
    (["model=vae", "loss.beta=-1"], "loss.beta=-1: must be a finite number >= 0"),
    (["model=gan", "+mine=dv", "model.regularizers.mine.beta=-2"], "model.regularizers.mine.beta=-2: must be"),
    (["model=dcgan", "model.pack=0"], "model.pack=0: must be a positive integer (>= 1)"),
    (["model=cgan", "model.embed_dim=0"], "model.embed_dim=0: must be a positive integer (>= 1)"),
    (["dataset=mnist", "dataset.channels=0"], "dataset.channels=0: must be a positive integer (>= 1)"),
]


@pytest.mark.parametrize("overrides,message", OUT_OF_RANGE, ids=lambda o: " ".join(o) if isinstance(o, list) else "")
def test_a_value_out_of_range_names_the_key_the_user_typed(overrides, message):
    with pytest.raises(GenrunError) as info:
        check_ranges(compose_config(*overrides))
    assert str(info.value).startswith(message)


def test_ranges_describe_and_contain():
    assert Range(1, integer=True).contains(1) and not Range(1, integer=True).contains(0)
    assert not Range(1, integer=True).contains(True) and not Range(1, integer=True).contains(2.0)
    assert Range(0, 1, high_open=True).contains(0.0) and not Range(0, 1, high_open=True).contains(1.0)
    assert not Range(0, low_open=True).contains(0.0) and Range(0, low_open=True).contains(1e-9)
    assert not Range().contains(float("nan")) and not Range().contains(float("inf"))
    assert Range(0, 1, low_open=True).describe() == "a finite number in (0, 1]"


def test_interpolations_are_followed_to_the_key_the_user_set():
    assert source_key("model.generator.z_dim", "${model.z_dim}") == "model.z_dim"
    assert source_key("optimizer.generator.lr", "${..lr}") == "optimizer.lr"
    assert source_key("optimizer.generator.lr", "${.base}") == "optimizer.generator.base"
    assert source_key("model.width", 3) == "model.width"
    with pytest.raises(GenrunError):  # the same check runs before any work in run()
        check_ranges(compose_config("trainer.batch_size=0"))
