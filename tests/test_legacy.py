"""Runs already on disk keep working: checkpoints written by an earlier genrun (version 1, see
tests/data/legacy/make.py) resume with today's code to the weights the old code reached, and
genrun-sample reads them.

"The weights the old code reached" are stored (<case>.end.pt), not hashed: the same code on
CPUs with other vector units (AVX-512 or not) rounds differently, so a hash recorded on one
machine fails on another. Measured on these four cases: another thread count, or a 1e-7
relative perturbation of the checkpoint, moves the step-8 weights by at most 2.4e-7; a resume
from the wrong data position moves every weight, by up to 1.5e-3, far outside the tolerance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from genrun.run_state import read_checkpoint
from genrun.sample import sample_command
from genrun.task import resume_config
from genrun.train import run

LEGACY = Path(__file__).parent / "data" / "legacy"
CASES = sorted(p.stem for p in LEGACY.glob("*.pt") if not p.stem.endswith(".end"))


def test_there_are_legacy_checkpoints_of_several_families():
    assert {"dcgan", "vae", "aae", "infogan"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_a_version_1_checkpoint_resumes_to_the_weights_the_old_code_reached(tmp_path, case):
    record = json.loads((LEGACY / f"{case}.json").read_text())
    (tmp_path / "checkpoints").mkdir()
    shutil.copyfile(LEGACY / f"{case}.pt", tmp_path / "checkpoints" / "last.pt")
    half = read_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert half["version"] == 2 and half["step"] == 4
    run(resume_config(half["config_raw"], [f"trainer.max_steps={record['step']}"], str(tmp_path)), tmp_path, half)
    end = read_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert end["step"] == record["step"]
    old = torch.load(LEGACY / f"{case}.end.pt", weights_only=True)
    nets = end["pipeline"]["nets"]
    assert set(nets) == set(old)
    for name in old:
        assert set(nets[name]) == set(old[name])
        for key, value in old[name].items():
            torch.testing.assert_close(nets[name][key], value, rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")


def test_a_decoder_optimizer_saved_as_generator_is_read_as_decoder(tmp_path):
    checkpoint = read_checkpoint(LEGACY / "vae.pt")
    assert set(checkpoint["pipeline"]["optimizers"]) == {"encoder", "decoder"}
    assert "decoder" in checkpoint["config_raw"]["optimizer"]
    out = sample_command(str(LEGACY / "vae.pt"), n=4, out=str(tmp_path / "s.pt"))
    assert out.is_file()
