"""genrun-eval: a run's metrics from its checkpoint (eval.json with its protocol), on one run or
every run of a sweep, and one clear line for bad arguments."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from genrun.cli import eval_main
from genrun.eval_command import eval_command
from tests.conftest import run_cli, tiny_overrides


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A 2-job multirun sweep (seeds 0 and 1) of a tiny GAN on ring8 that evaluates every 2 steps."""
    folder = tmp_path_factory.mktemp("sweep") / "multirun"
    run_cli("-m", *tiny_overrides("gan", "dataset=ring8", "trainer.max_steps=4", "trainer.eval_every=2", "eval.best_by=fid",
                                  "trainer.seed=0,1"), f"hydra.sweep.dir={folder}", cwd=folder.parent, check=True)
    return folder


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_genrun_eval_reproduces_the_runs_own_numbers_with_their_protocol(sweep):
    (written,) = eval_command(str(sweep / "0"))
    assert written == sweep / "0" / "eval.json"
    result, trained = read(written), read(sweep / "0" / "metrics.json")
    assert result["step"] == 4 and result["protocol"]["checkpoint"] == "checkpoints/last.pt"
    assert result["protocol"]["step"] == 4 and result["protocol"]["n_fake"] == 200
    for key in ("fid", "kid", "precision", "recall", "density", "coverage"):
        assert result[key] == pytest.approx(trained[key], rel=1e-9, abs=1e-12), key
    assert result["floor"] == pytest.approx(trained["floor"]) and result["protocol"]["features"]["name"] == "raw"


def test_ckpt_best_with_other_metrics_and_sample_count(sweep):
    (written,) = eval_command(str(sweep / "1"), ckpt="best", metrics="fid", n=50)
    result, trained = read(written), read(sweep / "1" / "metrics.json")
    assert result["protocol"]["checkpoint"] == "checkpoints/best.pt"
    assert result["step"] == result["protocol"]["step"] == trained["best"]["step"]
    assert result["protocol"]["n_fake"] == 50 and list(result["protocol"]["metrics"]) == ["fid"]
    assert "fid" in result and "kid" not in result and set(result["floor"]) == {"fid"}


def test_a_sweep_folder_evaluates_every_run_and_reports_one_without_a_checkpoint(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    (copy / "2" / ".hydra").mkdir(parents=True)  # a job that died before its first checkpoint
    shutil.copy(copy / "0" / ".hydra" / "config.yaml", copy / "2" / ".hydra" / "config.yaml")
    for eval_json in copy.rglob("eval.json"):
        eval_json.unlink()
    proc = run_cli(f"run={copy}", "metrics=fid,pr", entry="genrun-eval", cwd=tmp_path, check=True)
    assert f"evaluated 2 of 3 runs under {copy}" in proc.stdout
    assert f"skipped (no checkpoint) {copy / '2'}" in proc.stdout
    for job in ("0", "1"):
        result = read(copy / job / "eval.json")
        assert {"fid", "precision", "recall"} <= set(result) and result["protocol"]["step"] == 4


BAD = [
    (["run=MISSING"], r"run=.*missing: no such file or folder"),
    (["run=NOCKPT"], r"nockpt has no checkpoints/last.pt"),
    (["run=NOBEST", "ckpt=best"], r"nobest has no checkpoints/best.pt \(a run writes it when it evaluates"),
    (["run=NOBEST", "ckpt=step_9.pt"], r"ckpt=step_9.pt: no such file"),
    (["run=NOBEST", "n=0"], r"n=0: the number of generated samples must be a positive integer"),
    (["run=NOBEST", "n=many"], r"n='many' is not a valid int"),
    (["run=NOBEST", "k=0"], r"k=0: the IWAE bound's importance samples must be a positive integer"),
    (["run=NOBEST", "metrics=fid,nope"], r"metrics=nope is not an option; valid: (\w+, )*fid, (\w+, )*kid"),
    (["run=NOBEST", "features=inception3"], r"features=inception3 is not an option; valid: auto, (\w+, )*raw"),
    (["run=NOBEST", "seed=1"], r"unknown argument 'seed=1'; usage: genrun-eval run=PATH"),
    (["ckpt=best"], r"run=PATH is required"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_are_one_line_and_exit_2(sweep, tmp_path, monkeypatch, capsys, args, message):
    (tmp_path / "nockpt" / ".hydra").mkdir(parents=True)
    (tmp_path / "nockpt" / ".hydra" / "config.yaml").write_text("{}\n")  # died before its first checkpoint
    (tmp_path / "nobest" / "checkpoints").mkdir(parents=True)
    shutil.copy(sweep / "0" / "checkpoints" / "last.pt", tmp_path / "nobest" / "checkpoints" / "last.pt")
    names = {"MISSING": "missing", "NOCKPT": "nockpt", "NOBEST": "nobest"}
    argv = [a.split("=")[0] + "=" + str(tmp_path / names[a.split("=")[1]]) if a.startswith("run=") else a for a in args]
    monkeypatch.setattr(sys, "argv", ["genrun-eval", *argv])
    monkeypatch.delenv("GENRUN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        eval_main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("genrun-eval: error: ")
    assert __import__("re").search(message, err), err
    assert not list(tmp_path.rglob("eval.json"))
