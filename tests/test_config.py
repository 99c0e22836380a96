"""Every option of every group composes and instantiates; the schema rejects bad types."""

from __future__ import annotations

from importlib.resources import files

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf.errors import ValidationError

from genrun.build import build, build_data, build_pipeline, check_model_accepts_loss, losses_of_kind
from genrun.errors import GenrunError
from tests.conftest import compose_config


def options(group: str) -> list[str]:
    folder = files("genrun.configs").joinpath(group)
    return sorted(e.name[:-5] for e in folder.iterdir() if e.name.endswith(".yaml"))


def test_groups_have_the_contract_options():
    assert {"gan", "dcgan", "vae"} <= set(options("model"))
    assert {"gan", "nsgan", "wgan_gp", "elbo"} <= set(options("loss"))
    assert {"ring8", "grid25", "digits", "mnist", "fashion_mnist", "cifar10", "image_folder"} <= set(options("dataset"))
    assert {"adam", "rmsprop", "sgd"} <= set(options("optimizer"))
    assert {"default", "debug"} <= set(options("trainer"))


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_instantiates(loss):
    obj = build(compose_config(f"loss={loss}").loss, loss)
    families = [get_class(compose_config(f"model={m}").model._target_) for m in options("model")]
    assert any(obj.kind in f.loss_kinds for f in families), f"no model trains with {loss} ({obj.kind})"


@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_every_optimizer_builds_every_role(optimizer):
    factories = build(compose_config(f"optimizer={optimizer}").optimizer, optimizer)
    param = torch.nn.Parameter(torch.zeros(3))
    for role in ("generator", "discriminator", "encoder"):
        assert isinstance(factories[role]([param]), torch.optim.Optimizer)


@pytest.mark.parametrize("dataset", ["ring8", "grid25", "digits"])
def test_embedded_datasets_build(dataset):
    cfg = compose_config(f"dataset={dataset}")
    data = build_data(cfg)
    assert tuple(data.train.shape[1:]) == tuple(cfg.dataset.shape)
    assert data.labels is not None and len(data.labels) == len(data.train)


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_presets_validate(trainer):
    cfg = compose_config(f"trainer={trainer}")
    assert cfg.trainer.max_steps >= 1


@pytest.mark.parametrize("model,dataset", [("gan", "ring8"), ("gan", "digits"), ("dcgan", "digits"),
                                           ("vae", "digits"), ("vae", "ring8")])
def test_models_build_with_their_default_loss(model, dataset):
    cfg = compose_config(f"model={model}", f"dataset={dataset}", *(["model.arch=mlp"] if dataset == "ring8" and model == "vae" else []))
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    x = pipeline.sample(4)
    assert tuple(x.shape) == (4, *cfg.dataset.shape)


def test_model_picks_its_default_loss_and_cli_loss_wins():
    assert compose_config("model=vae").loss._target_.endswith("ELBO")
    assert compose_config("model=gan").loss._target_.endswith("NonSaturating")
    assert compose_config("model=dcgan", "loss=wgan_gp").loss._target_.endswith("WGANGP")


def test_dcgan_critic_drops_batchnorm_for_gradient_penalty():
    assert compose_config("loss=wgan_gp").model.discriminator.norm == "layer"
    assert compose_config("loss=gan").model.discriminator.norm == "batch"


def test_shapes_come_from_the_dataset():
    cfg = compose_config("dataset.image_size=32")
    assert list(cfg.model.generator.shape) == [1, 32, 32]
    assert list(compose_config("model=gan", "dataset=ring8").model.generator.shape) == [2]


def test_incompatible_model_and_loss_is_a_clear_error():
    with pytest.raises(GenrunError, match=r"model=.*VAEPipeline|does not train with"):
        check_model_accepts_loss(compose_config("model=vae", "loss=wgan_gp"))
    assert set(losses_of_kind(("likelihood",))) == {"elbo"}
    assert {"gan", "nsgan", "wgan_gp"} <= set(losses_of_kind(("adversarial",)))


def test_trainer_schema_rejects_wrong_types():
    with pytest.raises(ConfigCompositionException) as info:
        compose_config("trainer.max_steps=abc")
    assert isinstance(info.value.__cause__, ValidationError)
    with pytest.raises(ConfigCompositionException):
        compose_config("trainer.device=tpu")


def test_conv_nets_reject_image_sizes_they_cannot_make():
    with pytest.raises(GenrunError, match="image_size=24"):
        build_pipeline(compose_config("dataset.image_size=24"), torch.device("cpu"))


@pytest.mark.parametrize("overrides,message", [
    (["model=aae", "model.prior=gauss"], "model.prior=gauss is not a valid choice; valid: gaussian, mixture, uniform"),
    (["model=vae", "model.arch=resnet"], "model.arch=resnet is not a valid choice; valid: conv, mlp"),
    (["model=infogan", "model.arch=cnn"], "model.arch=cnn is not a valid choice; valid: conv, mlp"),
])
def test_a_mistyped_key_inside_a_target_lists_the_valid_values(overrides, message):
    with pytest.raises(GenrunError) as info:
        build_pipeline(compose_config(*overrides), torch.device("cpu"))
    assert str(info.value) == message


def test_every_packaged_model_passes_the_target_check():
    from genrun.build import check_target_choices

    for entry in files("genrun.configs").joinpath("model").iterdir():
        if entry.name.endswith(".yaml"):
            check_target_choices(compose_config(f"model={entry.name[:-5]}").model)
