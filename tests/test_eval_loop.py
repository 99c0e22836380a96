"""Evaluation during training (trainer.eval_every): it never disturbs training, keeps best.pt by
the monitored key, logs eval/<key>, and a resumed run continues it bit-exactly."""

from __future__ import annotations

import json
import math

import pytest

from genrun.engine.checkpoint import load_checkpoint
from genrun.engine.summary import summary_rows
from genrun.errors import GenrunError
from genrun.eval_loop import BestTracker
from genrun.evaluation import Evaluation
from genrun.task import resume_config
from genrun.train import run
from tests.conftest import compose_config, tiny_overrides
from tests.test_training import assert_bitwise_equal

# the generator has BatchNorm; with an EMA, sampling re-estimates the EMA copy's statistics
RING = tiny_overrides("gan", "dataset=ring8", "trainer.ema=0.9", "trainer.sample_every=100", "trainer.log_every=2",
                      "metrics=[fid,kid,pr]")
STATE = ("pipeline", "updater", "rng", "data", "sample_noise")


def eval_scalars(tb, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def state(path) -> dict:
    ckpt = load_checkpoint(path)
    return {k: ckpt[k] for k in STATE}


@pytest.mark.parametrize("ema", ["0.9", "0"], ids=["ema", "no_ema"])
def test_evaluating_every_2_steps_leaves_training_bit_identical_and_keeps_the_best(tmp_path, ema):
    plain, evaluated = tmp_path / "plain", tmp_path / "eval"
    run(compose_config(*RING, f"trainer.ema={ema}", "trainer.max_steps=6"), plain)
    metrics = run(compose_config(*RING, f"trainer.ema={ema}", "trainer.max_steps=6", "trainer.eval_every=2"), evaluated)
    assert assert_bitwise_equal(state(plain / "checkpoints" / "last.pt"),
                                state(evaluated / "checkpoints" / "last.pt")) > 10
    fid = eval_scalars(evaluated / "tb", "eval/fid")
    assert sorted(fid) == [2, 4, 6] and sorted(eval_scalars(evaluated / "tb", "eval/recall")) == [2, 4, 6]
    best_step = min(fid, key=fid.get)
    assert metrics["best"] == {"key": "fid", "value": pytest.approx(fid[best_step]), "step": best_step, "split": "test"}
    best = load_checkpoint(evaluated / "checkpoints" / "best.pt")
    assert best["step"] == best_step and best["best"]["step"] == best_step
    assert set(best) == set(load_checkpoint(evaluated / "checkpoints" / "last.pt"))  # a full training state
    assert not (plain / "checkpoints" / "best.pt").exists() and "best" not in json.loads(
        (plain / "metrics.json").read_text())
    assert metrics["fid"] == pytest.approx(fid[6])  # the end of the run reuses the step-6 evaluation


def test_a_run_killed_between_checkpoints_resumes_to_the_same_weights_and_best(tmp_path):
    common = [*RING, "trainer.eval_every=2", "trainer.ckpt_every=3", "trainer.keep_last=5", "eval.best_by=recall"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(compose_config(*common, "trainer.max_steps=8"), straight)
    run(compose_config(*common, "trainer.max_steps=5"), killed)
    # as if killed after step 5: continue from step_3.pt (best.pt of step 4 was already written)
    half = load_checkpoint(killed / "checkpoints" / "step_3.pt")
    metrics = run(resume_config(half["config_raw"], ["trainer.max_steps=8"], str(killed)), killed, half)
    a, b = (load_checkpoint(f / "checkpoints" / "last.pt") for f in (straight, killed))
    assert a["step"] == b["step"] == 8 and a["best"] == b["best"]
    assert_bitwise_equal({k: a[k] for k in STATE}, {k: b[k] for k in STATE})
    best_a, best_b = (load_checkpoint(f / "checkpoints" / "best.pt") for f in (straight, killed))
    assert best_a["step"] == best_b["step"] == metrics["best"]["step"]
    assert_bitwise_equal({k: best_a[k] for k in STATE}, {k: best_b[k] for k in STATE})


def test_a_resumed_run_compares_against_the_saved_best(tmp_path):
    run(compose_config(*RING, "trainer.max_steps=2", "trainer.eval_every=2"), tmp_path)
    half = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert half["best"]["key"] == "fid" and half["best"]["step"] == 2
    half["best"]["value"] = -1.0  # no later FID can beat it
    metrics = run(resume_config(half["config_raw"], ["trainer.max_steps=4"], str(tmp_path)), tmp_path, half)
    assert metrics["best"] == {"key": "fid", "value": -1.0, "step": 2, "split": "test"}
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["step"] == 2


def test_an_unknown_best_by_fails_at_start_up_listing_the_keys(tmp_path):
    cfg = compose_config(*RING, "trainer.eval_every=2", "eval.best_by=fdi", "metrics=[fid,pr]")
    with pytest.raises(GenrunError, match=r"^eval.best_by=fdi is not a key of the configured metrics; "
                                          r"valid: auto, fid, precision, recall$"):
        run(cfg, tmp_path)
    assert not list(tmp_path.iterdir())


def evaluation(values: dict, skipped: tuple[str, ...] = (), first_key: str | None = "fid") -> Evaluation:
    return Evaluation(values=values, skipped=dict.fromkeys(skipped, "why"), first_key=first_key)


def test_best_tracker_follows_each_keys_direction_and_skips_missing_values():
    directions = {"fid": {"fid": "lower"}, "pr": {"precision": "higher", "recall": "higher"}}
    auto = BestTracker("auto", directions, "setup")
    # auto: the first key of the first metric that ran (fid was skipped at step 1)
    assert auto.offer(1, evaluation({"precision": 0.5}, skipped=("fid",), first_key="precision"))
    assert auto.best.key == "precision" and not auto.offer(2, evaluation({"fid": 0.1, "precision": 0.4}))
    higher = BestTracker("recall", directions, "setup")
    offers = [higher.offer(s, evaluation({"recall": v})) for s, v in ((1, 0.2), (2, None), (3, 0.1), (4, 0.3))]
    assert offers == [True, False, False, True] and (higher.best.value, higher.best.step) == (0.3, 4)
    lower = BestTracker("fid", directions, "setup")
    assert [lower.offer(s, evaluation({"fid": v})) for s, v in ((1, 2.0), (2, 3.0), (3, 1.0))] == [True, False, True]
    resumed = BestTracker("fid", directions, "setup")
    resumed.restore(lower.state())
    assert not resumed.offer(4, evaluation({"fid": 1.5})) and resumed.best.step == 3
    other = BestTracker("fid", directions, "another setup")  # e.g. eval.n_fake changed on resume
    other.restore(lower.state())
    assert other.best.value is None and other.offer(4, evaluation({"fid": 1.5}))


def test_the_summary_shows_the_best_step_and_value():
    rows = dict(summary_rows({"step": 3000, "fid": 14.0, "best": {"key": "fid", "value": 12.3, "step": 2000}}))
    assert rows["best fid"] == "12.3 at step 2000"


def test_a_checkpoint_from_before_evaluation_resumes_with_todays_defaults(tmp_path):
    run(compose_config(*RING, "trainer.max_steps=2"), tmp_path)
    old = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    for config in (old["config"], old["config_raw"]):
        for group in ("eval", "metrics", "features"):
            del config[group]
    cfg = resume_config(old["config_raw"], ["trainer.max_steps=4", "trainer.eval_every=2", "eval.n_fake=100",
                                            "eval.n_real=100", "eval.best_by=fid"], str(tmp_path))
    defaults = compose_config().metrics
    assert sorted(cfg.metrics) == sorted(defaults) == ["auto"] and cfg.features._target_.endswith("AutoFeatures")
    assert (cfg.eval.n_fake, cfg.eval.n_real, cfg.eval.seed, cfg.eval.best_by) == (100, 100, 0, "fid")
    metrics = run(cfg, tmp_path, old)
    assert metrics["step"] == 4 and metrics["best"]["step"] in (2, 4) and math.isfinite(metrics["fid"])
    assert metrics["protocol"]["n_fake"] == 100


def test_resume_may_change_how_the_run_is_measured_but_not_what_it_trains(tmp_path):
    run(compose_config(*RING, "trainer.max_steps=2"), tmp_path)
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["config_raw"]
    cfg = resume_config(saved, ["metrics=[fid,kid]", "features=raw", "metrics.kid.subsets=3", "+eval.seed=5"], "x")
    assert sorted(cfg.metrics) == ["fid", "kid"] and cfg.metrics.kid.subsets == 3 and cfg.eval.seed == 5
    assert cfg.features._target_.endswith("RawFeatures") and cfg.eval.n_fake == 200  # the rest as saved
    with pytest.raises(GenrunError, match="only trainer.*, eval.*, metrics and features may change; got 'loss=wgan'"):
        resume_config(saved, ["loss=wgan"], "x")
    with pytest.raises(GenrunError, match=r"metrics=nope is not an option; valid: (\w+, )*fid, (\w+, )*pr"):
        resume_config(saved, ["metrics=[fid,nope]"], "x")
