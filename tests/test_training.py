"""Tiny models train for a few steps on CPU: finite, moving losses; exact checkpoints and resume."""

from __future__ import annotations

import math

import pytest
import torch

from genrun.build import losses_of_kind
from genrun.engine.checkpoint import load_checkpoint
from genrun.errors import GenrunError
from genrun.train import run
from tests.conftest import compose_config, tiny_overrides

ADVERSARIAL = losses_of_kind(("adversarial",))
PAIRS = (
    [("gan", loss, "ring8") for loss in ADVERSARIAL]
    + [("dcgan", loss, "digits") for loss in ADVERSARIAL]
    + [("gan", "nsgan", "digits"), ("vae", "elbo", "digits"), ("vae", "elbo", "ring8")]
)


def train(tmp_path, *overrides: str) -> dict:
    return run(compose_config(*overrides), tmp_path)


@pytest.mark.parametrize("model,loss,dataset", PAIRS)
def test_every_model_and_allowed_loss_trains(tmp_path, model, loss, dataset):
    extra = ["model.arch=mlp"] if (model, dataset) == ("vae", "ring8") else []
    metrics = train(tmp_path, *tiny_overrides(model, f"loss={loss}", f"dataset={dataset}",
                                              "trainer.max_steps=6", "trainer.log_every=3", *extra))
    losses = {k: v for k, v in metrics.items() if k.startswith("loss/")}
    assert losses and all(math.isfinite(v) for v in losses.values())
    assert metrics["step"] == 6
    assert (tmp_path / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "samples" / "step_6.png").exists()
    if dataset == "ring8":
        assert {"modes", "hq", "kl_to_uniform"} <= set(metrics)


def test_losses_move_and_parameters_change(tmp_path):
    from genrun.build import build_pipeline

    cfg = compose_config(*tiny_overrides("dcgan", "trainer.max_steps=4"))
    before = build_pipeline(cfg, torch.device("cpu")).state_dict()["nets"]["generator"]
    run(cfg, tmp_path)
    after = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["pipeline"]["nets"]["generator"]
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    log = (tmp_path / "tb").iterdir()
    assert list(log)


def tensors(tree, prefix=""):
    """Every tensor in a nested checkpoint, by its path."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from tensors(v, f"{prefix}/{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from tensors(v, f"{prefix}/{i}")


def assert_bitwise_equal(a: dict, b: dict) -> int:
    ta, tb = dict(tensors(a)), dict(tensors(b))
    assert ta.keys() == tb.keys()
    for key in ta:
        assert ta[key].dtype == tb[key].dtype and torch.equal(ta[key], tb[key]), key
    return len(ta)


RESUME_CASES = [
    ("dcgan", ["loss=wgan_gp", "trainer.n_critic=2"]),  # GP draws random alphas: RNG must resume
    ("gan", ["dataset=ring8", "trainer.batch_size=32"]),
    ("vae", ["dataset.image_size=16"]),
    # the schedule's position is part of the state (T_max fixed: the first half runs 15 of 30 steps)
    ("gan", ["dataset=ring8", "trainer.batch_size=32", "scheduler=cosine", "scheduler.T_max=30"]),
]


@pytest.mark.parametrize("model,extra", RESUME_CASES, ids=["dcgan_wgan_gp", "gan_ring8", "vae", "gan_cosine_lr"])
def test_resume_continues_bit_exactly(tmp_path, model, extra):
    # 300 digits batches of 8 are 224 per epoch: 8 steps x n_critic cross no epoch here, but
    # batch_size 64 below does (1797 // 64 = 28 batches) for the digits runs.
    common = tiny_overrides(model, *extra, "trainer.batch_size=64", "trainer.ckpt_every=100",
                            "trainer.sample_every=100", "trainer.log_every=3")
    straight, first, resumed = tmp_path / "straight", tmp_path / "half", tmp_path / "half"
    run(compose_config(*common, "trainer.max_steps=30"), straight)
    run(compose_config(*common, "trainer.max_steps=15"), first)
    half = load_checkpoint(first / "checkpoints" / "last.pt")
    assert half["step"] == 15
    from genrun.task import resume_config

    cfg = resume_config(half["config_raw"], ["trainer.max_steps=30"], str(first))
    run(cfg, resumed, half)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 30
    assert a["data"] == b["data"]
    n = assert_bitwise_equal({k: a[k] for k in ("pipeline", "rng", "sample_noise")},
                             {k: b[k] for k in ("pipeline", "rng", "sample_noise")})
    assert n > 10


@pytest.mark.parametrize("schedule,halfway,end", [("linear", 0.5, 0.0), ("cosine", 0.5, 0.0), ("step", 0.5, 0.25)])
def test_learning_rate_schedules_follow_their_formula_for_every_role(tmp_path, schedule, halfway, end):
    extra = ["scheduler.step_size=4"] if schedule == "step" else []
    common = [*tiny_overrides("gan", "dataset=ring8", f"scheduler={schedule}", *extra), "optimizer.lr=1e-3"]
    run(compose_config(*common, "trainer.max_steps=8", "trainer.ckpt_every=4", "trainer.keep_last=5"), tmp_path)
    lrs = {}
    for steps in (4, 8):
        ckpt = load_checkpoint(tmp_path / "checkpoints" / f"step_{steps}.pt")
        lrs[steps] = {role: opt["param_groups"][0]["lr"] for role, opt in ckpt["pipeline"]["optimizers"].items()}
    assert set(lrs[8]) == {"generator", "discriminator"}
    for role in lrs[8]:
        assert lrs[4][role] == pytest.approx(halfway * 1e-3) and lrs[8][role] == pytest.approx(end * 1e-3, abs=1e-12)


def test_resuming_with_another_max_steps_warns_that_the_schedule_keeps_its_length(tmp_path, caplog):
    from genrun.task import resume_config

    run(compose_config(*tiny_overrides("gan", "dataset=ring8", "scheduler=linear", "trainer.max_steps=4")), tmp_path)
    half = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    with caplog.at_level("WARNING", logger="genrun"):
        run(resume_config(half["config_raw"], ["trainer.max_steps=6"], str(tmp_path)), tmp_path, half)
    assert "schedule was built for 4 steps" in caplog.text


def test_a_bad_schedule_setting_is_one_clear_error(tmp_path):
    with pytest.raises(GenrunError, match=r"scheduler.end_factor=2: must be a finite number in \[0, 1\]"):
        run(compose_config(*tiny_overrides("gan", "dataset=ring8", "scheduler=linear", "scheduler.end_factor=2")),
            tmp_path)


def test_checkpoint_round_trips_bit_exactly(tmp_path):
    from genrun.build import build_pipeline

    run(compose_config(*tiny_overrides("dcgan", "trainer.max_steps=3")), tmp_path)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["format"] == "genrun-checkpoint" and ckpt["version"] == 2
    from omegaconf import OmegaConf

    pipeline = build_pipeline(OmegaConf.create(ckpt["config_raw"]), torch.device("cpu"))
    pipeline.load_state_dict(ckpt["pipeline"])
    assert_bitwise_equal(pipeline.state_dict(), ckpt["pipeline"])
    # keep_last=2: two step files beside last.pt, which holds the newest
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["last.pt", "step_2.pt", "step_3.pt"]


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from genrun.engine.updates import Updater

    real_step, calls = Updater.step, []

    def step_that_diverges_at_12(self, pipeline, next_batch, step):
        calls.append(1)
        scalars = real_step(self, pipeline, next_batch, step)
        if len(calls) >= 12:
            scalars["loss/g"] = scalars["loss/g"] * float("nan")
        return scalars

    monkeypatch.setattr(Updater, "step", step_that_diverges_at_12)
    cfg = compose_config(*tiny_overrides("gan", "dataset=ring8", "trainer.max_steps=50", "trainer.ckpt_every=5",
                                         "trainer.log_every=7"))
    with pytest.raises(GenrunError, match=r"loss/g became NaN or infinite at step 12") as info:
        run(cfg, tmp_path)
    assert "last good checkpoint" in str(info.value)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 10
