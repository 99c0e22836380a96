"""A non-editable install works: the configs ship inside the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_runs_without_the_source_tree(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(REPO)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("genrun-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path)
    shipped = {p.relative_to(target / "genrun" / "configs") for p in (target / "genrun" / "configs").rglob("*.yaml")}
    assert shipped == {p.relative_to(REPO / "configs") for p in (REPO / "configs").rglob("*.yaml")}
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}

    def python(*args: str) -> str:
        proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert python("-c", "import genrun; print(genrun.__file__)").startswith(str(target))
    info = python("-m", "genrun", "--info", "searchpath")
    assert "pkg://genrun.configs" in info
    python("-m", "genrun", "trainer=debug", "eval=debug", "trainer.max_steps=5", "model.generator.width=8",
           "model.discriminator.width=8", "hydra.run.dir=run")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["step"] == 5
