"""genrun-report: the table of runs under a folder, read only from the files runs write.

Most tests fabricate run folders by hand (.hydra/config.yaml, hydra.yaml, metrics.json,
genrun.log) with known values; one real sweep on ring8 checks the same against what genrun
writes, and that TensorBoard's HPARAMS tab sees the same settings and metrics.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from genrun.errors import GenrunError
from genrun.report import differing, direction, report_command
from genrun.runs import LOG_END, LOG_START, RECENT_S, read_run
from tests.conftest import TINY, run_cli

BOX = set("│┃━─┏┡└")


def log_line(message: str, level: str = "INFO") -> str:
    """A genrun.log record as configs/hydra/job_logging/genrun.yaml formats it."""
    return f"[2026-01-01 10:00:00,000][genrun][{level}] {message}\n"


def make_run(folder: Path, model: str = "dcgan", lr: float = 2e-4, z_dim: int = 16,
             metrics: dict[str, Any] | None = None, log: list[str] | None = None, checkpoints: tuple[int, ...] = (),
             age_s: float = 0.0, extra: dict[str, Any] | None = None) -> Path:
    """A run folder as genrun leaves it: the config (with interpolations and a _target_), the
    group choices, metrics.json when given, genrun.log lines, step_<N>.pt files; `age_s` ago."""
    hydra = folder / ".hydra"
    hydra.mkdir(parents=True)
    config = {"dataset": {"name": "ring8"}, "model": {"_target_": f"genrun.pipelines.{model}.P", "z_dim": z_dim,
              "generator": {"z_dim": "${model.z_dim}", "width": 8, "tag": "g${model.z_dim}"}}, "optimizer": {"lr": lr, "betas": [0.5, 0.999]},
              "trainer": {"seed": 0, "compile": False}, "resume": None, **(extra or {})}
    (hydra / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    choices = {"dataset": "ring8", "model": model, "loss": "nsgan", "hydra/launcher": "basic"}
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if log is not None:
        (folder / "genrun.log").write_text("".join(log))
    if checkpoints:
        (folder / "checkpoints").mkdir()
        for step in (*checkpoints, "last"):
            (folder / "checkpoints" / (f"step_{step}.pt" if step != "last" else "last.pt")).write_bytes(b"x")
    stamp = time.time() - age_s
    for path in folder.rglob("*"):
        os.utime(path, (stamp, stamp))
    return folder


def done(fid: float | None = None, step: int = 100, **more: Any) -> dict[str, Any]:
    """A finished run's metrics.json."""
    metrics = {"step": step, "status": "completed", "primary": "fid", "time_s": 1.5, "loss/g": 0.7,
               "floor": {"fid": 0.1}, "protocol": {"n_fake": 200}, **more}
    if fid is not None:
        metrics["fid"] = fid
    return metrics


def finished_log(step: int = 100) -> list[str]:
    return [log_line(f"{LOG_START}x (device cpu)"), log_line(f"step {step}/{step} | loss/g 0.7"),
            log_line(f"{LOG_END}step={step}")]


def report(*argv: str, capsys) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Run genrun-report in this process; its plain output split into cells, and its rows."""
    rows = report_command([*argv])
    out = capsys.readouterr().out
    assert not BOX & set(out)  # not a terminal: plain text
    return [line.split() for line in out.splitlines()], rows


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Three finished runs that differ in model, lr and z_dim (job 10 sorts after job 2)."""
    make_run(tmp_path / "sweep" / "0", "dcgan", 2e-4, 16, done(30.0, recall=0.5), finished_log())
    make_run(tmp_path / "sweep" / "2", "gan", 2e-4, 32, done(12.5, recall=0.7), finished_log())
    make_run(tmp_path / "sweep" / "10", "dcgan", 1e-4, 16, done(18.0, recall=0.6), finished_log())
    return tmp_path / "sweep"


def test_only_the_settings_that_differ_become_columns(sweep, capsys):
    lines, rows = report(str(sweep), capsys=capsys)
    assert lines[0] == ["model", "model.z_dim", "model.generator.tag", "optimizer.lr", "status", "step", "fid",
                        "recall", "folder"]
    assert [r["folder"] for r in rows] == ["0", "2", "10"]  # natural order without --sort
    assert lines[2] == ["gan", "32", "g32", "0.0002", "completed", "100", "12.5", "0.7", "2"]  # resolved
    assert "dataset.name" in rows[0] and "model._target_" not in rows[0] and "resume" not in rows[0]
    assert "model.generator.z_dim" not in rows[0]  # ${model.z_dim}: shown once, where it is set


def test_a_setting_only_some_runs_have_differs(sweep, capsys):
    make_run(sweep / "3", extra={"scheduler": {"step_size": 10}}, metrics=done(5.0))
    lines, rows = report(str(sweep), "--filter", "model=dcgan", capsys=capsys)
    assert lines[0][:3] == ["optimizer.lr", "scheduler.step_size", "status"]
    assert [r.get("scheduler.step_size") for r in rows] == [None, 10, None]


@pytest.mark.parametrize("argv,order", [
    (["--sort", "fid"], ["2", "10", "0"]),             # lower is better
    (["--sort", "recall"], ["2", "10", "0"]),          # higher is better
    (["--sort", "fid", "--desc"], ["0", "10", "2"]),
    (["--sort", "model"], ["0", "10", "2"]),           # text: alphabetical (dcgan, dcgan, gan)
    (["--desc"], ["10", "2", "0"]),
])
def test_sort_follows_the_direction_of_the_metric(sweep, capsys, argv, order):
    _, rows = report(str(sweep), *argv, capsys=capsys)
    assert [r["folder"] for r in rows] == order


def test_runs_without_the_sort_key_come_last(sweep, capsys):
    make_run(sweep / "1", metrics=done(None))
    for desc in ([], ["--desc"]):
        _, rows = report(str(sweep), "--sort", "fid", *desc, capsys=capsys)
        assert rows[-1]["folder"] == "1"


@pytest.mark.parametrize("filters,kept", [
    (["model=dcgan"], ["0", "10"]),
    (["model=dcgan", "fid<20"], ["10"]),
    (["fid>=18"], ["0", "10"]),
    (["optimizer.lr=2e-4"], ["0", "2"]),                # numbers compare as numbers
    (["model!=dcgan"], ["2"]),
    (["dataset.name=ring8", "trainer.compile=false"], ["0", "2", "10"]),
])
def test_filters_are_anded(sweep, capsys, filters, kept):
    argv = [a for f in filters for a in ("--filter", f)]
    _, rows = report(str(sweep), *argv, capsys=capsys)
    assert [r["folder"] for r in rows] == kept


@pytest.mark.parametrize("argv,message", [
    (["--filter", "fid"], r"--filter 'fid' is not KEY OP VALUE"),
    (["--filter", "fidd<3"], r"no run has the key 'fidd'; valid: .*fid"),
    (["--filter", "fid<low"], r"< compares numbers, and 'low' is not one"),
    (["--filter", "model=vae"], r"none of the 3 runs under .* matches model=vae"),
    (["--sort", "fidd"], r"--sort fidd: no run has this key"),
    (["--bogus"], r"unrecognized arguments: --bogus; usage: genrun-report PATH"),
])
def test_bad_arguments_are_one_clear_error(sweep, argv, message):
    with pytest.raises(GenrunError, match=message):
        report_command([str(sweep), *argv])


def test_csv_holds_every_shown_row_and_column_in_full_precision(sweep, capsys, tmp_path):
    make_run(sweep / "4", metrics=done(1 / 3))
    target = tmp_path / "out" / "table.csv"
    target.parent.mkdir()
    lines, rows = report(str(sweep), "--sort", "fid", "--filter", "model=dcgan", "--csv", str(target), capsys=capsys)
    with open(target, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == lines[0]
    assert [line[table[0].index("folder")] for line in table[1:]] == ["4", "10", "0"]
    assert float(table[1][table[0].index("fid")]) == 1 / 3  # not the screen's 0.3333
    assert lines[1][lines[0].index("fid")] == "0.3333"
    assert list(tmp_path.glob("out/.*")) == []


def test_default_metrics_are_the_primary_and_the_quality_ones_all_keys_adds_the_rest(tmp_path, capsys):
    best = {"key": "fid", "value": 9.0, "step": 40}
    make_run(tmp_path / "a", "vae", metrics=done(20.0, primary="loss/vae", **{"loss/vae": 3.5, "best": best}))
    make_run(tmp_path / "b", "dcgan", metrics=done(25.0, **{"modes": 8, "rkl": None, "hq": 90.0}))
    lines, _ = report(str(tmp_path), capsys=capsys)
    assert lines[0] == ["model", "status", "step", "loss/vae", "fid", "modes", "best/fid", "best/step", "folder"]
    assert lines[1][-3:] == ["9", "40", "a"]
    lines, _ = report(str(tmp_path), "--all-keys", capsys=capsys)
    assert lines[0][3:] == ["loss/vae", "fid", "modes", "hq", "loss/g", "time_s", "best/fid", "best/step", "folder"]


def test_statuses_come_from_metrics_json_the_log_and_the_checkpoints(tmp_path, capsys):
    old = RECENT_S + 60
    cases = {
        "completed": make_run(tmp_path / "completed", metrics=done(10.0), log=finished_log(), age_s=old),
        "stopped by SIGTERM": make_run(tmp_path / "stopped", metrics={**done(10.0, step=50), "status": "stopped by SIGTERM"}),
        "failed": make_run(tmp_path / "failed", log=[log_line(f"{LOG_START}x"), log_line("step 20/100 | loss/g 1"),
                                                       log_line("error: training diverged: loss/d is nan", "ERROR")]),
        "running": make_run(tmp_path / "running", log=[log_line(f"{LOG_START}x"), log_line("step 30/100 |")],
                            checkpoints=(20, 25)),
        "interrupted": make_run(tmp_path / "interrupted", log=[log_line(f"{LOG_START}x")], checkpoints=(20,), age_s=old),
        "unreadable": make_run(tmp_path / "unreadable", metrics=None, checkpoints=(20,)),
        # a resume that started after the metrics were written and is still training
        "running again": make_run(tmp_path / "resumed", metrics=done(10.0), log=[
            *finished_log(), log_line(f"{LOG_START}x (start step 100)"), log_line("step 150/200 |")]),
        # a resume refused before it started (a bad override) leaves the finished run as it was
        "still completed": make_run(tmp_path / "refused", metrics=done(10.0), log=[
            *finished_log(), log_line("error: resume continues the saved run, so only trainer.* may change", "ERROR")]),
    }
    (cases["unreadable"] / "metrics.json").write_text('{"step": 4, "fid": ')
    expected = {"completed": ("completed", 100), "stopped by SIGTERM": ("stopped by SIGTERM", 50),
                "failed": ("failed", 20), "running": ("running", 30), "interrupted": ("interrupted", 20),
                "unreadable": ("unreadable", 20), "running again": ("running", 150), "still completed": ("completed", 100)}
    for name, folder in cases.items():
        run = read_run(folder)
        assert (run.status, run.step) == expected[name], name
    assert read_run(cases["failed"]).notes == ["training diverged: loss/d is nan"]
    assert read_run(cases["running again"]).metrics == {}  # the old numbers no longer describe it
    assert "metrics.json: Expecting value" in read_run(cases["unreadable"]).notes[0]
    _, rows = report(str(tmp_path), "--filter", "status=failed", capsys=capsys)
    assert rows[0]["error"] == "training diverged: loss/d is nan"


def test_rich_table_on_a_terminal(sweep, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    report_command([str(sweep)])
    out = capsys.readouterr().out
    assert BOX & set(out) and "3 of 3 runs under" in out


def test_sort_directions_come_from_the_runs_and_old_runs_read_under_todays_names(tmp_path, capsys):
    """A run says which way each of its metrics is better (metrics.json "directions"), so a metric
    genrun-report has never heard of sorts best first; a run written before that, with the old
    key rkl, is read as kl_to_uniform with the directions metrics had then."""
    new = done(kl_to_uniform=0.2, novelty=5.0, directions={"kl_to_uniform": "lower", "novelty": "higher"})
    make_run(tmp_path / "runs" / "new", metrics=new, log=finished_log())
    make_run(tmp_path / "runs" / "old", metrics=done(rkl=0.1, novelty=3.0, modes=8, primary="rkl"), log=finished_log())
    make_run(tmp_path / "runs" / "older", metrics=done(rkl=0.3, modes=7), log=finished_log())
    _, rows = report(str(tmp_path / "runs"), "--sort", "novelty", capsys=capsys)
    assert [r["folder"] for r in rows] == ["new", "old", "older"]  # higher first, the run without it last
    _, rows = report(str(tmp_path / "runs"), "--sort", "kl_to_uniform", capsys=capsys)
    assert [r["folder"] for r in rows] == ["old", "new", "older"] and rows[0]["kl_to_uniform"] == 0.1
    _, rows = report(str(tmp_path / "runs"), "--sort", "modes", capsys=capsys)
    assert [r["folder"] for r in rows] == ["old", "older", "new"]  # an old run's modes: higher is better
    assert read_run(tmp_path / "runs" / "old").primary == "kl_to_uniform"
    assert direction("best/novelty", {"novelty": "higher"}) == "higher" and direction("x", {}) == ""


def test_a_real_runs_metrics_json_names_every_metrics_direction(real_sweep):
    metrics = json.loads((next(real_sweep.rglob("metrics.json"))).read_text())
    assert metrics["directions"]["fid"] == "lower" and metrics["directions"]["kl_to_uniform"] == "lower"
    assert metrics["directions"]["modes"] == "higher" and metrics["directions"]["steps_per_s"] == "higher"
    assert {k for k in metrics["directions"]} >= {"fid", "kid", "precision", "recall", "modes", "hq"}


def test_genrun_report_answers_without_importing_torch(tmp_path):
    code = "import sys, genrun.cli, genrun.report; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=tmp_path).returncode == 0


def test_a_folder_without_runs_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "empty" / "samples").mkdir(parents=True)
    proc = run_cli(str(tmp_path / "empty"), entry="genrun-report", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"genrun-report: error: no runs under {tmp_path / 'empty'} (a run folder holds .hydra/config.yaml, "
        "metrics.json or checkpoints/)"]


# ---- a real sweep ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> Path:
    """genrun -m on ring8: trainer.batch_size=8,0 x loss=gan,nsgan (jobs 2 and 3, with 0, fail at start)."""
    root = tmp_path_factory.mktemp("report")
    tiny = [o for o in TINY if not o.startswith("trainer.batch_size=")]
    run_cli("-m", "model=gan", "dataset=ring8", *tiny, "trainer.max_steps=4", "trainer.batch_size=8,0",
            "loss=gan,nsgan", f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    return root / "sweep"


@pytest.mark.trains
def test_report_of_a_real_sweep_in_a_pipe(real_sweep):
    proc = run_cli(str(real_sweep), "--sort", "fid", entry="genrun-report", cwd=real_sweep, check=True)
    assert not BOX & set(proc.stdout)
    header = proc.stdout.splitlines()[0].split()
    assert header[:5] == ["loss", "trainer.batch_size", "status", "step", "fid"] and header[-2:] == ["folder", "error"]
    rows = report_command([str(real_sweep), "--all-keys"])
    by_folder = {r["folder"]: r for r in rows}
    for job in ("0", "1"):
        metrics = json.loads((real_sweep / job / "metrics.json").read_text())
        assert by_folder[job]["status"] == "completed" and by_folder[job]["step"] == 4
        assert by_folder[job]["fid"] == metrics["fid"] and by_folder[job]["loss/g"] == metrics["loss/g"]
    for job in ("2", "3"):
        assert by_folder[job]["status"] == "failed" and "trainer.batch_size=0" in by_folder[job]["error"]
    assert {by_folder[j]["loss"] for j in "0123"} == {"gan", "nsgan"}


@pytest.mark.trains
def test_a_real_run_without_metrics_json_is_running_then_interrupted(real_sweep, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(real_sweep / "0", copy)
    (copy / "metrics.json").unlink()
    assert (read_run(copy).status, read_run(copy).step) == ("running", 4)
    later = time.time() + RECENT_S + 1
    assert read_run(copy, now=later).status == "interrupted"


@pytest.mark.trains
def test_tensorboard_hparams_show_the_reports_settings_and_metrics(real_sweep):
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(real_sweep))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(real_sweep))
    tb = backend_context.Context(base_plugin.TBContext(logdir=str(real_sweep), multiplexer=mux, data_provider=provider))
    request = context.RequestContext()
    content = tb.hparams_metadata(request, "")
    experiment = tb.experiment_from_metadata(request, "", True, content, tb.hparams_from_data_provider(request, "", 0))
    runs = [read_run(real_sweep / job) for job in ("0", "1")]  # the runs that got as far as tb/
    assert sorted(content) == ["0/tb", "1/tb"]
    assert {h.name for h in experiment.hparam_infos if h.differs} == set(differing(runs)) == {"loss"}
    assert {h.name for h in experiment.hparam_infos} == {k for run in runs for k in run.settings}
    assert {f"final/{k}" for run in runs for k in run.metrics} <= {m.name.tag for m in experiment.metric_infos}
