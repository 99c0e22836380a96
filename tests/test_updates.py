"""The engine owns every update: phases change exactly their networks, in any precision."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from genrun.build import build_data, build_pipeline
from genrun.data.bundle import Batches
from genrun.engine.updates import Updater
from genrun.errors import GenrunError
from genrun.train import run
from tests.conftest import compose_config
from tests.test_families import tiny

# every family (with its tricks that add phases or hooks), on data it trains with
FAMILIES = {
    "dcgan": ["model=dcgan", "trainer=debug", "eval=debug", "trainer.batch_size=8", "model.generator.width=8",
              "model.discriminator.width=8", "trainer.ema=0.9"],
    "gan+wgan": ["model=gan", "dataset=ring8", "loss=wgan", "trainer=debug", "eval=debug", "trainer.batch_size=8",
                 "model.generator.width=8", "model.discriminator.width=8", "trainer.n_critic=2"],
    "gan+mine": ["model=gan", "dataset=ring8", "+mine=dv", "trainer=debug", "eval=debug", "trainer.batch_size=8",
                 "model.generator.width=8", "model.discriminator.width=8"],
    "mine": ["model=mine", "dataset=gaussians_corr", "trainer=debug", "eval=debug", "trainer.batch_size=8"],
    **{name: tiny(name) for name in ("cgan", "cvae", "aae", "bigan", "infogan", "vae")},
}


def parameters_by_net(pipeline) -> dict[str, list[torch.Tensor]]:
    return {name: [p.detach().clone() for p in net.parameters()] for name, net in pipeline.nets.items()}


def changed_nets(before: dict, pipeline) -> set[str]:
    return {name for name, net in pipeline.nets.items()
            if any(not torch.equal(a, p) for a, p in zip(before[name], net.parameters(), strict=True))}


def nets_of_roles(pipeline, roles: tuple[str, ...]) -> set[str]:
    """The nets whose parameters the roles' optimizers hold, plus their EMA copies."""
    own = {id(p) for role in roles for g in pipeline.optimizers[role].param_groups for p in g["params"]}
    names = {name for name, net in pipeline.nets.items() if any(id(p) in own for p in net.parameters())}
    return names | {ema for ema, source in pipeline.ema_sources.items() if source in names}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_phase_changes_exactly_the_networks_it_names(family):
    cfg = compose_config(*FAMILIES[family])
    torch.manual_seed(0)
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    batches = Batches(build_data(cfg), int(cfg.trainer.batch_size), torch.device("cpu"), 0)
    updater = Updater()
    assert pipeline.phases, "a family declares its training step as phases"
    for phase in pipeline.phases:
        before = parameters_by_net(pipeline)
        updater.update(pipeline, phase, batches())
        allowed = nets_of_roles(pipeline, phase.roles)
        changed = changed_nets(before, pipeline)
        assert changed <= allowed, f"phase {phase.name} changed {changed - allowed}"
        trained = {n for n in allowed if n not in pipeline.ema_sources}
        assert changed & trained, f"phase {phase.name} changed none of {trained}"


def test_frozen_networks_get_their_flags_back_and_no_gradient():
    cfg = compose_config(*FAMILIES["dcgan"])
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    flags = {name: [p.requires_grad for p in net.parameters()] for name, net in pipeline.nets.items()}
    batches = Batches(build_data(cfg), 8, torch.device("cpu"), 0)
    generator_phase = pipeline.phases[1]
    Updater().update(pipeline, generator_phase, batches())
    assert all(p.grad is None for p in pipeline.discriminator.parameters())  # no weight-grad work in G's phase
    assert flags == {name: [p.requires_grad for p in net.parameters()] for name, net in pipeline.nets.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_in_bf16_on_the_cpu(tmp_path, family):
    cfg = compose_config(*FAMILIES[family], "trainer.precision=bf16", "trainer.max_steps=6", "trainer.log_every=3",
                         "trainer.sample_every=100", "trainer.ckpt_every=100")
    metrics = run(cfg, tmp_path)
    losses = {k: v for k, v in metrics.items() if k.startswith(("loss/", "mine/", "info/", "aae/", "vae/"))}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses


def test_bf16_really_autocasts_and_moves_the_loss():
    cfg = compose_config(*FAMILIES["dcgan"])
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    seen = []
    handle = pipeline.discriminator.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    batches = Batches(build_data(cfg), 8, torch.device("cpu"), 0)
    updater = Updater("cpu", "bf16")
    first = updater.step(pipeline, batches, 1)["loss/d"].item()
    handle.remove()
    assert torch.bfloat16 in seen
    later = [updater.step(pipeline, batches, step)["loss/d"].item() for step in range(2, 7)]
    assert all(math.isfinite(v) for v in later) and any(v != first for v in later)


def test_gradient_clipping_bounds_each_update():
    # SGD with lr 1 and no momentum moves the weights by exactly the (clipped) gradient
    cfg = compose_config("model=gan", "dataset=ring8", "optimizer=sgd", "optimizer.lr=1.0", "optimizer.momentum=0",
                         "model.generator.width=8", "model.discriminator.width=8", "trainer.device=cpu")
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    batch = Batches(build_data(cfg), 16, torch.device("cpu"), 0)()
    before = [p.detach().clone() for p in pipeline.discriminator.parameters()]
    Updater("cpu", "32", grad_clip=1e-3).update(pipeline, pipeline.phases[0], batch)
    step = torch.cat([(p - b).flatten() for p, b in zip(pipeline.discriminator.parameters(), before, strict=True)])
    assert step.norm().item() == pytest.approx(1e-3, rel=1e-4)


def test_precision_settings_are_checked():
    with pytest.raises(GenrunError, match="trainer.precision=8: valid: 32, bf16, 16"):
        Updater("cpu", "8")
    with pytest.raises(GenrunError, match="trainer.precision=16 needs a GPU"):
        Updater("cpu", "16")


def test_no_family_calls_backward_or_an_optimizer_step():
    for source in (Path(__file__).parents[1] / "genrun" / "pipelines").glob("*.py"):
        text = source.read_text()
        assert not re.search(r"\.backward\(|\.step\(\)|zero_grad", text), f"{source.name} updates networks itself"


def test_a_compile_failure_is_one_line_naming_the_way_out(tmp_path, monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    def broken_compile(module, *args, **kwargs):
        def fail(*_):
            raise TorchDynamoException("no working C++ compiler found")

        module.register_forward_pre_hook(fail)

    monkeypatch.setattr(torch.nn.Module, "compile", broken_compile)
    cfg = compose_config(*FAMILIES["gan+wgan"], "trainer.compile=true")
    with pytest.raises(GenrunError, match=r"trainer.compile=true failed on this platform .*use trainer.compile=false"):
        run(cfg, tmp_path)


@pytest.mark.slow
def test_compiled_training_matches_the_checkpoint_layout(tmp_path):
    plain = run(compose_config(*FAMILIES["gan+wgan"], "trainer.max_steps=2"), tmp_path / "plain")
    compiled = run(compose_config(*FAMILIES["gan+wgan"], "trainer.max_steps=2", "trainer.compile=true"),
                   tmp_path / "compiled")
    assert math.isfinite(compiled["loss/d"]) and plain["step"] == compiled["step"] == 2
    from genrun.engine.checkpoint import load_checkpoint

    a, b = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt")["pipeline"]["nets"] for d in ("plain", "compiled"))
    assert {k: list(v) for k, v in a.items()} == {k: list(v) for k, v in b.items()}  # same state_dict keys


class SkippingScaler:
    """A loss scaler whose every step finds inf gradients: it halves its scale and skips."""

    def __init__(self) -> None:
        self.scale = 65536.0

    def get_scale(self) -> float:
        return self.scale

    def step(self, optimizer) -> None:
        pass  # skipped: the optimizer does not step

    def update(self) -> None:
        self.scale /= 2


def test_an_fp16_phase_that_keeps_skipping_says_so(caplog):
    updater, scaler = Updater(), SkippingScaler()
    with caplog.at_level("WARNING", logger="genrun"):
        for _ in range(25):
            updater.scaled_step("D", scaler, [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)])
    warnings = [r.getMessage() for r in caplog.records if "skipped its last" in r.getMessage()]
    assert len(warnings) == 1 and "the D phase skipped its last 20 steps" in warnings[0]


class LinearCritic(torch.nn.Module):
    """V(x) = w . x: its input gradient is w everywhere, so R1 = E ||grad_x V||^2 = ||w||^2."""

    pack = 1

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[0.6], [-0.8]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


def linear_gan(r1_every: int, gamma: float = 2.0, lr: float = 0.1):
    from functools import partial

    from genrun.losses.adversarial import NonSaturating
    from genrun.pipelines.gan import GANPipeline

    sgd = partial(torch.optim.SGD, lr=lr)
    return GANPipeline(torch.nn.Linear(4, 2), LinearCritic(), NonSaturating(r1_gamma=gamma, r1_every=r1_every),
                       {"generator": sgd, "discriminator": sgd}, z_dim=4)


@pytest.mark.parametrize("k", [2, 4])
def test_lazy_r1_runs_every_kth_step_with_its_weight_times_k(k):
    """Karras et al. 2020, sec. 3.1: the R1 phase runs on steps k, 2k, ... and minimises
    k * gamma/2 * ||w||^2, so SGD moves w by -lr * k * gamma * w in that phase."""
    gamma, lr = 2.0, 0.1
    pipeline = linear_gan(k, gamma, lr)
    names = [phase.name for phase in pipeline.phases]
    assert names == ["D", "Dreg", "G"]
    lazy = pipeline.phases[1]
    assert lazy.every == k and [s for s in range(1, 2 * k + 1) if lazy.runs_at(s)] == [k, 2 * k]
    batch = {"x": torch.randn(16, 2)}
    w = pipeline.discriminator.w.detach().clone()
    scalars = Updater().update(pipeline, lazy, batch)
    assert float(scalars["r1"]) == pytest.approx(k * gamma / 2 * float(w.pow(2).sum()), rel=1e-6)
    assert torch.allclose(pipeline.discriminator.w, w * (1 - lr * k * gamma), atol=1e-7)
    assert "r1" not in pipeline.phases[0].objective(batch)[1]  # the critic phase leaves R1 to its own phase
    assert set(Updater().step(pipeline, lambda: {"x": torch.randn(16, 2)}, k - 1)) == {"loss/d", "loss/g"}
    assert "r1" in Updater().step(pipeline, lambda: {"x": torch.randn(16, 2)}, k)


def test_r1_with_every_critic_update_stays_in_the_critic_phase():
    pipeline = linear_gan(1)
    assert [phase.name for phase in pipeline.phases] == ["D", "G"]
    w = pipeline.discriminator.w.detach().clone()
    loss, scalars = pipeline.phases[0].objective({"x": torch.randn(16, 2)})
    assert float(scalars["r1"]) == pytest.approx(float(w.pow(2).sum()), rel=1e-6)  # gamma/2 = 1


@pytest.mark.parametrize("bad", [0, 2.5, True])
def test_a_bad_r1_interval_is_one_clear_error(bad):
    from genrun.losses.adversarial import NonSaturating

    with pytest.raises(GenrunError, match=rf"^loss.r1_every={bad!r}: must be an integer >= 1"):
        NonSaturating(r1_gamma=1.0, r1_every=bad)


def every_adversarial_loss():
    from genrun.losses import adversarial, fgan

    classes = [adversarial.Minimax, adversarial.NonSaturating, adversarial.BoundarySeeking, adversarial.LeastSquares,
               adversarial.Hinge, adversarial.Wasserstein, adversarial.WGAN, adversarial.WGANGP]
    return [*(cls(r1_gamma=1.0, r1_every=3) for cls in classes),
            fgan.FGAN(fgan.KL(), r1_gamma=1.0, r1_every=3)]


def test_every_adversarial_loss_passes_its_r1_interval_on():
    for loss in every_adversarial_loss():
        assert loss.lazy_every == 3, type(loss).__name__
        assert "r1" not in loss.regularizers(lambda x: x.sum(1, keepdim=True), torch.ones(2, 2), torch.ones(2, 2))
