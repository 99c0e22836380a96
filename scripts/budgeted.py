"""What the representation benchmarks share (bench_ssgan.py, bench_dann.py, bench_d_probe.py,
bench_independence.py, bench_discrete_bgan.py): a genrun run fitted to a CPU-time budget, and the
Markdown table they print.

A run's length is fixed before it starts (schedules such as DANN's lambda_p and LR decays need it),
so the budget is turned into steps: `probe` steps of the run's own update are timed after a warm-up,
and the run gets `fill` x budget / (CPU-s per step) steps. It then trains and is evaluated exactly as
`genrun OVERRIDES trainer.max_steps=N` would do (genrun.train.run, in a temporary folder), and each
row of a table carries that command.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

QUIET = ["trainer.log_every=1000000", "trainer.sample_every=1000000", "trainer.ckpt_every=1000000"]


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from genrun.config import register

    register()
    with initialize_config_module("genrun.configs", version_base=None):
        return hydra_compose("config", overrides=overrides)


def seconds_per_step(overrides: list[str], probe: int = 20) -> float:
    """CPU-seconds of one training step of the run `overrides` describes (after 3 warm-up steps)."""
    from genrun.build import build_data, build_pipeline, pick_device
    from genrun.data.bundle import Batches
    from genrun.engine.updates import Updater

    cfg = compose(overrides)
    torch.manual_seed(int(cfg.trainer.seed))
    device = pick_device(cfg.trainer.device)
    data, pipeline = build_data(cfg), build_pipeline(cfg, device)
    batches = Batches(data, int(cfg.trainer.batch_size), device, int(cfg.trainer.seed))
    updater = Updater(device, cfg.trainer.precision)
    for step in range(1, 4):
        updater.step(pipeline, batches, step)
    start = time.process_time()
    for step in range(4, 4 + probe):
        updater.step(pipeline, batches, step)
    return (time.process_time() - start) / probe


def budgeted_run(overrides: list[str], budget_s: float, fill: float = 0.9, steps: int | None = None,
                 probe: int = 20, folder: Path | None = None) -> dict[str, Any]:
    """Train the run `overrides` describes for about `budget_s` CPU-seconds (or exactly `steps`) and
    return its metrics (metrics.json's), with `steps`, `cpu_s` (training and evaluation) and `command`.
    The run folder is temporary unless `folder` is given (e.g. to evaluate its checkpoint again)."""
    from genrun.train import run

    if steps is None:
        steps = max(probe, int(fill * budget_s / seconds_per_step(overrides, probe)))
    final = [*overrides, f"trainer.max_steps={steps}"]
    logging.getLogger("genrun").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        start = time.process_time()
        metrics = run(compose([*final, *QUIET]), folder or Path(tmp))
    return {**metrics, "steps": steps, "cpu_s": time.process_time() - start,
            "command": "genrun " + " ".join(final)}


def number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) else "-"


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
