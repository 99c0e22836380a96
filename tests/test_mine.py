"""MINE: the bounds against hand computations, the moving average in checkpoints, a real estimate
of a known mutual information, and GAN+MINE training through GANPipeline's regulariser hook."""

from __future__ import annotations

import math

import pytest
import torch

from genrun.build import build_data, build_pipeline
from genrun.data.gaussians import correlated_gaussians, gaussian_mutual_information
from genrun.engine.checkpoint import load_checkpoint
from genrun.engine.updates import Updater
from genrun.errors import GenrunError
from genrun.losses.mine import (
    DonskerVaradhan,
    FDivergence,
    MovingAverage,
    dv_bound,
    dv_bound_corrected,
    f_bound,
    log_mean_exp,
)
from genrun.pipelines.mine import statistics_values
from genrun.train import run
from tests.conftest import compose_config, tiny_overrides
from tests.test_training import assert_bitwise_equal

T_JOINT = torch.tensor([1.0, 2.0, 3.0])
T_MARGINAL = torch.tensor([0.0, math.log(2.0), math.log(3.0), math.log(6.0)])  # e^T = 1, 2, 3, 6: mean 3


def test_dv_bound_of_a_fixed_critic_matches_its_hand_computation():
    assert dv_bound(T_JOINT, T_MARGINAL).item() == pytest.approx(2.0 - math.log(3.0), abs=1e-6)
    assert log_mean_exp(torch.tensor([1000.0, 1000.0])).item() == pytest.approx(1000.0)  # no overflow


def test_mine_f_bound_of_a_fixed_critic_matches_its_hand_computation():
    expected = 2.0 - (1 + 2 + 3 + 6) / 4 / math.e  # E_P[T] - E_Q[e^(T-1)] = 2 - 3/e
    assert f_bound(T_JOINT, T_MARGINAL).item() == pytest.approx(expected, abs=1e-6)
    assert FDivergence().bound(T_JOINT, T_MARGINAL).item() == pytest.approx(expected, abs=1e-6)
    assert FDivergence().surrogate(T_JOINT, T_MARGINAL, None).item() == pytest.approx(expected, abs=1e-6)  # unbiased
    assert DonskerVaradhan().bound(T_JOINT, T_MARGINAL).item() == pytest.approx(2.0 - math.log(3.0), abs=1e-6)


def test_corrected_dv_keeps_the_value_and_divides_the_gradient_by_the_moving_average():
    t_joint, t_marginal = T_JOINT.clone().requires_grad_(), T_MARGINAL.clone().requires_grad_()
    average = 5.0
    value = dv_bound_corrected(t_joint, t_marginal, torch.tensor(math.log(average)))
    assert value.item() == pytest.approx(2.0 - math.log(3.0), abs=1e-6)
    value.backward()
    # d/dT_j of E_P[T] = 1/3; of the corrected log term: -e^(T_j) / (n * average), n = 4
    assert torch.allclose(t_joint.grad, torch.full((3,), 1 / 3))
    assert torch.allclose(t_marginal.grad, -torch.tensor([1.0, 2.0, 3.0, 6.0]) / (4 * average))
    plain = T_MARGINAL.clone().requires_grad_()
    dv_bound(T_JOINT, plain).backward()  # the batch gradient divides by the batch mean (3)
    assert torch.allclose(plain.grad, -torch.tensor([1.0, 2.0, 3.0, 6.0]) / (4 * 3.0))


def test_moving_average_starts_at_the_first_batch_then_blends():
    ma = MovingAverage(rate=0.1)
    assert ma.update(torch.tensor(math.log(4.0))).exp().item() == pytest.approx(4.0)
    assert ma.update(torch.tensor(math.log(14.0))).exp().item() == pytest.approx(0.9 * 4 + 0.1 * 14, rel=1e-5)
    assert int(ma.count) == 2 and set(ma.state_dict()) == {"log_value", "count"}
    last = MovingAverage(rate=1.0)  # rate 1: no correction, the batch's own mean
    last.update(torch.tensor(1.0))
    assert last.update(torch.tensor(2.5)).item() == pytest.approx(2.5)
    objective = DonskerVaradhan(ma_rate=0.5)
    state = objective.new_state()
    objective.surrogate(T_JOINT, T_MARGINAL, state)
    assert state.log_value.exp().item() == pytest.approx(3.0, rel=1e-5)
    with pytest.raises(GenrunError, match="ma_rate=0"):
        DonskerVaradhan(ma_rate=0.0)


def test_dv_objective_settings_and_state():
    assert DonskerVaradhan().ma_rate == 0.01  # configs/loss/mine_dv.yaml
    assert DonskerVaradhan(ma_rate=1.0).ma_rate == 1.0  # rate 1 (plain batch gradient) is allowed
    with pytest.raises(GenrunError, match=r"ma_rate=1.5: the moving-average rate must be in \(0, 1\]"):
        DonskerVaradhan(ma_rate=1.5)
    with pytest.raises(GenrunError, match=r"^the DV objective needs the MovingAverage state from its new_state\(\)$"):
        DonskerVaradhan().surrogate(T_JOINT, T_MARGINAL, None)
    objective = DonskerVaradhan(ma_rate=0.5)
    state = objective.new_state()
    assert state.count.dtype == torch.long  # an integer step count (float32 would stop counting at 2^24)
    objective.surrogate(T_JOINT, T_MARGINAL, state)
    frozen_value = objective.surrogate(T_JOINT, T_MARGINAL + 1.0, state, update=False)  # GAN+MINE's generator pass
    assert int(state.count) == 1 and state.log_value.exp().item() == pytest.approx(3.0, rel=1e-5)
    assert frozen_value.item() == pytest.approx(2.0 - math.log(3.0) - 1.0, abs=1e-6)  # the value stays the bound


def test_gaussian_pairs_have_the_stated_correlation_and_mutual_information():
    data = correlated_gaussians(rho=0.8, dim=3, size=20_000, test_size=100)
    assert tuple(data.train.shape) == (20_000, 2, 3) and tuple(data.test.shape) == (100, 2, 3)
    x, z = data.train[:, 0], data.train[:, 1]
    corr = ((x * z).mean(0) - x.mean(0) * z.mean(0)) / (x.std(0) * z.std(0))
    assert torch.allclose(corr, torch.full((3,), 0.8), atol=0.02)
    assert data.mutual_information == pytest.approx(-1.5 * math.log(1 - 0.64))
    assert gaussian_mutual_information(0.5, 1) == pytest.approx(0.5 * math.log(4 / 3))


@pytest.mark.parametrize("override,message", [
    ("dataset.rho=1.0", r"dataset.rho=1.0: the correlation must satisfy \|rho\| < 1"),
    ("dataset.rho=-1.5", r"dataset.rho=-1.5"),
    ("dataset.rho=abc", r"dataset.rho='abc': must be a number"),
    ("dataset.dim=0", r"dataset.dim=0: must be an integer >= 1"),
    ("dataset.dim=1.5", r"dataset.dim=1.5: must be an integer >= 1"),
])
def test_dataset_keys_are_validated(override, message):
    with pytest.raises(GenrunError, match=message):
        build_data(compose_config("dataset=gaussians_corr", override))


def test_mine_rejects_other_losses_and_unpaired_data():
    from genrun.build import check_model_accepts_loss

    with pytest.raises(GenrunError, match="valid losses for .*: mine_dv, mine_f"):
        check_model_accepts_loss(compose_config("model=mine", "dataset=gaussians_corr", "loss=nsgan"))
    with pytest.raises(GenrunError, match="dataset of pairs"):
        build_pipeline(compose_config("model=mine", "dataset=ring8"), torch.device("cpu"))
    assert compose_config("model=mine").loss._target_.endswith("DonskerVaradhan")


MINE_FAST = ["model=mine", "dataset=gaussians_corr", "dataset.source.size=20000", "dataset.source.test_size=20000",
             "trainer=debug", "eval=debug", "model.statistics.width=32"]


@pytest.mark.trains
@pytest.mark.parametrize("loss", ["mine_dv", "mine_f"])
def test_mine_estimates_the_mutual_information_of_correlated_gaussians(tmp_path, loss):
    # d = 1, rho = 0.8: I = -1/2 log(0.36) = 0.511 nats; 600 steps of batch 256 take a few CPU seconds
    metrics = run(compose_config(*MINE_FAST, f"loss={loss}", "dataset.rho=0.8", "dataset.source.test_size=50000",
                                 "model.statistics.width=64", "trainer.max_steps=600", "trainer.batch_size=256",
                                 "optimizer.lr=1e-3", "optimizer.betas=[0.9,0.999]", "trainer.log_every=100",
                                 "trainer.sample_every=600", "trainer.ckpt_every=600"), tmp_path)
    truth = metrics["floor"]["mi_estimate"]  # the floor of the estimate: the true MI
    assert truth == pytest.approx(0.5 * math.log(1 / 0.36)) and metrics["protocol"]["floor_of"]["mi_estimate"] == "true MI"
    assert metrics["mi_estimate"] == pytest.approx(truth, rel=0.05)
    assert math.isfinite(metrics["mine/mi"]) and metrics["primary"] == "mi_estimate"
    picture = (tmp_path / "samples" / "step_600.png")
    assert picture.exists()


def test_mine_picture_is_a_heat_map_of_the_statistics_network_over_x1_z1():
    pipeline = build_pipeline(compose_config(*MINE_FAST, "dataset.dim=3", "model.ema=0"), torch.device("cpu"))
    # T(x, z) = x_1 * z_1: bright where x_1 and z_1 agree, dark where they differ
    pipeline.statistics.forward = lambda x, z: x[:, 0] * z[:, 0]
    heat = pipeline.sample(4)[0, 0]
    assert heat.shape == (128, 128) and heat.min() == -1 and heat.max() == 1
    assert heat[0, -1] == 1 and heat[-1, 0] == 1 and heat[0, 0] == -1  # top right (3, 3), bottom left (-3, -3)


@pytest.mark.trains
def test_moving_average_round_trips_a_checkpoint_and_resume_is_bit_exact(tmp_path):
    from genrun.task import resume_config

    common = [*MINE_FAST, "trainer.batch_size=64", "trainer.ckpt_every=100", "trainer.sample_every=100",
              "trainer.log_every=3"]
    straight, half = tmp_path / "straight", tmp_path / "half"
    run(compose_config(*common, "trainer.max_steps=30"), straight)
    run(compose_config(*common, "trainer.max_steps=15"), half)
    ckpt = load_checkpoint(half / "checkpoints" / "last.pt")
    average = ckpt["pipeline"]["nets"]["moving_average"]
    assert int(average["count"]) == 15 and torch.isfinite(average["log_value"])
    assert set(ckpt["pipeline"]["optimizers"]) == {"mine"}
    restored = build_pipeline(compose_config(*common), torch.device("cpu"))
    restored.load_state_dict(ckpt["pipeline"])
    assert torch.equal(restored.state.log_value, average["log_value"])
    run(resume_config(ckpt["config_raw"], ["trainer.max_steps=30"], str(half)), half, ckpt)
    a, b = (load_checkpoint(p / "checkpoints" / "last.pt") for p in (straight, half))
    assert a["step"] == b["step"] == 30 and a["data"] == b["data"]
    assert_bitwise_equal({k: a[k] for k in ("pipeline", "rng")}, {k: b[k] for k in ("pipeline", "rng")})


def gan_mine(*extra: str) -> list[str]:
    return tiny_overrides("gan", "dataset=ring8", "model.regularizers.mine.statistics.width=8", *extra)


def test_plus_mine_adds_the_regulariser_to_the_gan_config():
    cfg = compose_config(*gan_mine("+mine=dv"))
    mine = cfg.model.regularizers.mine
    assert mine.objective._target_.endswith("DonskerVaradhan") and mine.statistics.x_shape == cfg.model.z_dim
    assert list(mine.statistics.z_shape) == [2]
    assert compose_config(*gan_mine("+mine=f")).model.regularizers.mine.objective._target_.endswith("FDivergence")
    assert "regularizers" not in compose_config("model=gan").model
    dcgan = build_pipeline(compose_config("model=dcgan", "+mine=f", "model.regularizers.mine.code_dim=3"),
                           torch.device("cpu"))  # images: T reads the code and the flattened image
    assert dcgan.regularizers["mine"].statistics.x_size == 3 and dcgan.regularizers["mine"].statistics.z_size == 256


@pytest.mark.parametrize("override,message", [
    ("model.regularizers.mine.beta=-1", r"model.regularizers.mine.beta=-1"),
    ("model.regularizers.mine.code_dim=17", r"code_dim=17: must be between 1 and model.z_dim=16"),
    ("model.regularizers.mine.optimizer_role=critic", r"optimizer_role='critic'.*roles there: generator"),
])
def test_mine_regulariser_settings_are_validated(override, message):
    with pytest.raises(GenrunError, match=message):
        build_pipeline(compose_config(*gan_mine("+mine=dv", override)), torch.device("cpu"))


@pytest.mark.trains
@pytest.mark.parametrize("variant", ["dv", "f"])
def test_gan_with_mine_trains_with_finite_losses(tmp_path, variant):
    metrics = run(compose_config(*gan_mine(f"+mine={variant}", "trainer.max_steps=6", "trainer.log_every=3")), tmp_path)
    for key in ("loss/d", "loss/g", "mine/g_term", "mine/mi"):
        assert math.isfinite(metrics[key]), key
    assert metrics["mine/g_term"] != 0
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["pipeline"]
    assert {"generator", "discriminator", "mine"} == set(ckpt["optimizers"])
    expected = {"generator", "discriminator", "mine_statistics"} | ({"mine_moving_average"} if variant == "dv" else set())
    assert set(ckpt["nets"]) == expected


def test_mine_regulariser_trains_its_critic_and_pushes_only_the_generator():
    pipeline = build_pipeline(compose_config(*gan_mine("+mine=dv", "model.regularizers.mine.beta=2.0")),
                              torch.device("cpu"))
    regularizer = pipeline.regularizers["mine"]
    assert [p.name for p in pipeline.phases] == ["D", "G", "mine_regularizer"]  # T learns from G's pairs
    z = torch.randn(32, pipeline.z_dim)
    fake = pipeline.generator(z)
    terms = regularizer.generator_terms(z, fake)
    assert set(terms) == {"mine/g_term"} and terms["mine/g_term"].requires_grad
    assert torch.equal(regularizer.pairs[0], z) and not regularizer.pairs[1].requires_grad
    terms["mine/g_term"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in pipeline.generator.parameters())
    before = [p.detach().clone() for p in regularizer.statistics.parameters()]
    Updater().update(pipeline, pipeline.phases[-1], {"x": torch.zeros(32, 2)})
    assert any(not torch.equal(a, p) for a, p in zip(before, regularizer.statistics.parameters(), strict=True))


def test_mine_generator_term_is_minus_beta_times_the_bound_and_its_step_raises_the_estimate():
    # Belghazi et al. 2018, sec. 5.1: G maximises beta * I(c; G(z)), so it minimises -beta * the bound
    beta = 2.0
    pipeline = build_pipeline(compose_config(*gan_mine("+mine=f", f"model.regularizers.mine.beta={beta}")),
                              torch.device("cpu"))
    regularizer, generator = pipeline.regularizers["mine"], pipeline.generator
    torch.manual_seed(0)
    z = torch.randn(64, pipeline.z_dim)
    code = z[:, : regularizer.code_dim] if regularizer.code_dim is not None else z

    def bound() -> torch.Tensor:  # the current T's bound on (c, G(z)) with the shuffle the generator's term drew
        torch.manual_seed(2)
        return regularizer.objective.bound(*statistics_values(regularizer.statistics, code, generator(z)))

    torch.manual_seed(2)
    terms = regularizer.generator_terms(z, generator(z))  # the generator's term (T trains in its own phase)
    before = bound().item()
    assert terms["mine/g_term"].item() == pytest.approx(-beta * before, rel=1e-5)
    generator.zero_grad()
    terms["mine/g_term"].backward()
    lr, grads = 1e-2, [p.grad for p in generator.parameters() if p.grad is not None]
    with torch.no_grad():  # one plain gradient step of G on the term alone
        for p in generator.parameters():
            if p.grad is not None:
                p -= lr * p.grad
    gain = lr * sum(g.pow(2).sum() for g in grads).item() / beta  # first order: lr ||grad||^2 / beta
    assert bound().item() - before > 0.5 * gain > 0  # the step raises the estimate


@pytest.mark.trains
def test_gan_with_mine_resumes_bit_exactly(tmp_path):
    from genrun.task import resume_config

    common = gan_mine("+mine=dv", "trainer.batch_size=32", "trainer.ckpt_every=100", "trainer.sample_every=100")
    run(compose_config(*common, "trainer.max_steps=10"), tmp_path / "straight")
    run(compose_config(*common, "trainer.max_steps=5"), tmp_path / "half")
    ckpt = load_checkpoint(tmp_path / "half" / "checkpoints" / "last.pt")
    run(resume_config(ckpt["config_raw"], ["trainer.max_steps=10"], str(tmp_path / "half")), tmp_path / "half", ckpt)
    a, b = (load_checkpoint(tmp_path / p / "checkpoints" / "last.pt") for p in ("straight", "half"))
    assert_bitwise_equal({k: a[k] for k in ("pipeline", "rng")}, {k: b[k] for k in ("pipeline", "rng")})
