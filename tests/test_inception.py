"""features=inception and metrics=[is] through torch-fidelity, with Inception-v3 of random weights
(the real file cannot be downloaded here): genrun's numbers equal torch-fidelity's own."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image
from torch_fidelity import feature_extractor_inceptionv3 as fe
from torchvision.utils import save_image

from genrun.errors import GenrunError
from genrun.metrics.base import EvalContext
from genrun.metrics.classes import InceptionScore, split_inception_scores
from genrun.metrics.folders import folders_fid, read_images
from genrun.metrics.inception import (
    WEIGHTS_URL,
    InceptionFeatures,
    file_sha256,
    hub_weights_file,
    to_uint8,
)
from genrun.train import run
from tests.conftest import TINY, compose_config, run_cli


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """torch-fidelity's Inception-v3 with random weights (He-normal convolutions, so that features
    neither vanish nor explode through its ~90 layers), saved as its weight file format."""
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    g = torch.Generator().manual_seed(0)
    state = {}
    for name, value in net.state_dict().items():
        if name.endswith("conv.weight"):
            value = torch.randn(value.shape, generator=g) * math.sqrt(2 / value[0].numel())
        elif name == "fc.weight":
            value = torch.randn(value.shape, generator=g) / math.sqrt(value.shape[1])
        state[name] = value
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def space(weights) -> InceptionFeatures:
    return InceptionFeatures(str(weights))


def write_pngs(folder: Path, n: int, low: int, high: int, seed: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(low, high, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")


def test_samples_become_the_bytes_of_their_saved_png(tmp_path):
    x = torch.rand(3, 1, 6, 6) * 2 - 1  # grey, in the data's range (-1, 1)
    for i, image in enumerate(x):
        save_image((image + 1) / 2, tmp_path / f"{i}.png")
    assert torch.equal(to_uint8(x, (-1.0, 1.0)), read_images(tmp_path))  # grey -> RGB, rounded as save_image
    uint8 = (torch.rand(2, 3, 4, 4) * 255).to(torch.uint8)
    assert torch.equal(to_uint8(uint8, None), uint8)  # images read from files pass as they are
    with pytest.raises(GenrunError, match=r"needs images \[N, 1 or 3, H, W\], got \[5, 2\]"):
        to_uint8(torch.zeros(5, 2), None)


def test_inception_score_splits_equal_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(53, 7, generator=torch.Generator().manual_seed(1)) * 3
    scores = split_inception_scores(logits, 10)
    reference = isc_features_to_metric(logits, splits=10, shuffle=False)
    assert float(scores.mean()) == pytest.approx(reference["inception_score_mean"], rel=1e-10)
    assert float(scores.std(correction=0)) == pytest.approx(reference["inception_score_std"], rel=1e-10)
    # K equally likely classes predicted with certainty: IS = K in every split
    confident = torch.eye(4).repeat(10, 1) * 50
    assert split_inception_scores(confident, 10) == pytest.approx([4.0] * 10, rel=1e-6)


class Space:
    name, has_logits = "classifier", True


def test_inception_score_runs_only_in_inception_space():
    ctx = EvalContext(torch.zeros(4, 1, 2, 2), lambda: torch.zeros(20, 1, 2, 2), Space(), None, None, 0)
    assert "needs features=inception, not classifier" in InceptionScore().missing(ctx)
    ctx.space.name = "inception"
    assert InceptionScore().missing(ctx) is None
    assert InceptionScore(splits=30).missing(ctx) == "20 samples cannot make 30 splits"


def test_features_and_logits_share_one_forward_pass(space):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    space.prepare(None, (-1.0, 1.0), torch.device("cpu"))
    with mock.patch.object(space, "net", wraps=space.net) as net:
        pool = space.features(x)
        logits = space.logits(x)
        assert net.call_count == 1
        assert torch.equal(logits, space.logits(x)) and net.call_count == 2  # the kept logits were used once
    assert pool.shape == (3, 2048) and logits.shape == (3, 1008)
    assert torch.allclose(logits, pool @ space.net.fc.weight.T, atol=1e-5)  # torch-fidelity's logits_unbiased


@pytest.mark.slow
def test_folder_fid_equals_torch_fidelity_command_line(tmp_path, weights, space):
    write_pngs(tmp_path / "a", 20, 0, 256, seed=0)
    write_pngs(tmp_path / "b", 20, 60, 200, seed=1)
    ours = folders_fid(tmp_path / "a", tmp_path / "b", space)
    fidelity = Path(sys.executable).with_name("fidelity")
    proc = subprocess.run([str(fidelity), "--input1", str(tmp_path / "a"), "--input2", str(tmp_path / "b"), "--fid",
                           "--feature-extractor-weights-path", str(weights), "--cpu", "--json", "--silent"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(tmp_path / "torch")})
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)["frechet_inception_distance"]
    assert theirs > 1e-3  # two different sets of images: a number far from rounding noise
    assert ours == pytest.approx(theirs, rel=1e-6)  # 3e-8 here: the same network, features and statistics


@pytest.mark.slow
@pytest.mark.trains
def test_a_run_measures_in_inception_space_and_records_the_weights(tmp_path, weights):
    cfg = compose_config(*TINY, "features=inception", f"eval.inception_weights={weights}", "metrics=[fid,kid,is]",
                         "eval.n_fake=12", "eval.n_real=12", "eval.floor=false", "metrics.kid.subsets=3")
    metrics = run(cfg, tmp_path)
    assert all(math.isfinite(metrics[k]) for k in ("fid", "kid", "kid_std", "is", "is_std"))
    assert metrics["is"] >= 1.0 - 1e-9  # exp of a mean KL
    features = metrics["protocol"]["features"]
    assert features["name"] == "inception-v3" and features["feature"] == "2048"
    assert features["weights_sha256"] == file_sha256(weights)
    assert features["implementation"].startswith("torch-fidelity 0.4")
    assert metrics["protocol"]["metrics"]["is"]["splits"] == 10
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["protocol"]["features"]["weights_sha256"] == features["weights_sha256"]


@pytest.mark.parametrize("given", [False, True], ids=["hub-cache", "eval.inception_weights"])
def test_missing_weights_stop_the_run_before_training(tmp_path, given):
    assert hub_weights_file().name == WEIGHTS_URL.rsplit("/", 1)[1]  # torch hub keeps the URL's file name
    missing = tmp_path / "nope.pth"
    extra = [f"eval.inception_weights={missing}"] if given else []
    message = (f"eval.inception_weights={missing}: no such file" if given
               else f"download {WEIGHTS_URL} into {tmp_path / 'torch' / 'hub' / 'checkpoints'}")
    run_dir = tmp_path / "run"
    proc = run_cli("features=inception", "metrics=[fid,is]", "trainer=debug", "eval=debug", *extra,
                   f"hydra.run.dir={run_dir}", cwd=tmp_path, env={"TORCH_HOME": str(tmp_path / "torch")})
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in output
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], output
    assert {p.name for p in run_dir.iterdir()} <= {".hydra", "genrun.log"}  # nothing but Hydra's files
