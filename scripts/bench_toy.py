"""Mode collapse on the 2D mixtures (ring8, grid25) under one CPU-time budget per cell.

Each cell is a method (a set of genrun overrides) on one dataset, trained for as many steps
as fit its CPU budget: after a warm-up run, two short probe runs measure the CPU seconds per
step and the fixed cost (build, final metrics) with time.process_time on one thread, so other
work on the machine does not count, and the cell's run gets max_steps = (budget - fixed) /
per step, aiming at `--fill` (0.85) of it because late steps cost more than the probe's early
ones. The end-of-run mode metrics of genrun (PacGAN protocol, 2500 samples: modes with a
high-quality sample, % high-quality samples, reverse KL of the mode histogram to uniform) are
reported as mean ± standard error over seeds, beside the published rows of PacGAN (Lin et al.
2018, Table 1) and VEEGAN (Srivastava et al. 2017, Table 1), which trained far longer
(PacGAN: 400 epochs of 100k points).

A method is NAME (= `loss=NAME` on model=gan) or NAME:OVERRIDE,OVERRIDE,... where `{data}`
stands for the dataset, e.g. `pacgan:experiment=pacgan_{data}`.

CPU time is only comparable on an otherwise idle machine with --jobs <= its cores: two busy
hyperthreads make every process's CPU seconds longer. The table reports each run's CPU seconds.

    .venv/bin/python scripts/bench_toy.py --out toy.md                      # default table
    .venv/bin/python scripts/bench_toy.py --methods best:experiment=best_{data} \\
        --datasets grid25 --budget-s grid25=300 --seeds 0 1 2 --jobs 2 --out best.md
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

DEFAULT_METHODS = [
    "nsgan",
    "wgan_gp",
    "hinge",
    "pacgan:experiment=pacgan_{data}",
    "best:experiment=best_{data}",
]
DEFAULT_BUDGET = {"ring8": 120.0, "grid25": 300.0}
# modes, % high quality, reverse KL that count as solved (issue #3)
GOALS = {"ring8": (8, 98.0, 0.02), "grid25": (25, 95.0, 0.03)}
# (dataset, method, modes, hq %, rkl or None)
PUBLISHED = [
    ("grid25", "GAN (PacGAN paper, Table 1)", 17.3, 94.8, 0.70),
    ("grid25", "PacGAN4 (PacGAN paper, Table 1)", 24.8, 93.6, 0.04),
    ("grid25", "VEEGAN (VEEGAN paper, Table 1)", 24.6, 40.0, None),
    ("grid25", "Unrolled GAN (VEEGAN paper, Table 1)", 23.6, 16.0, None),
    ("ring8", "PacGAN2 (PacGAN paper, Table 1)", 7.9, 95.6, 0.07),
]
# every cell writes as little as it can: one log line, one preview and one checkpoint at the end
QUIET = ["trainer.device=cpu", "trainer.log_every=1000000", "trainer.sample_every=1000000",
         "trainer.ckpt_every=1000000", "trainer.keep_last=1"]


@dataclass(frozen=True)
class Cell:
    method: str
    overrides: tuple[str, ...]
    dataset: str
    seed: int
    budget_s: float
    probe_steps: int
    fill: float


def split_overrides(text: str) -> list[str]:
    """Split on commas outside brackets, so `optimizer.betas=[0.5,0.9]` stays one override."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in [*parts, current] if p]


def parse_method(spec: str, dataset: str) -> tuple[str, tuple[str, ...]]:
    """NAME -> loss=NAME on model=gan; NAME:OV,OV -> those overrides with {data} filled in."""
    name, _, rest = spec.partition(":")
    overrides = [o.replace("{data}", dataset) for o in split_overrides(rest)] if rest else [f"loss={name}"]
    return name, ("model=gan", f"dataset={dataset}", *overrides)


def parse_budget(text: str) -> dict[str, float]:
    """`300` (every dataset) or `ring8=120,grid25=300`."""
    if "=" not in text:
        return {k: float(text) for k in DEFAULT_BUDGET}
    return {**DEFAULT_BUDGET, **{k: float(v) for k, v in (p.split("=") for p in text.split(","))}}


def timed_run(overrides: list[str], steps: int) -> tuple[dict, float]:
    """genrun.train.run in a temporary folder, quietly; returns (metrics, CPU seconds)."""
    from hydra import compose, initialize_config_module

    from genrun.train import run

    with initialize_config_module("genrun.configs", version_base=None):
        cfg = compose("config", overrides=[*overrides, *QUIET, f"trainer.max_steps={steps}"])
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        t0 = time.process_time()
        metrics = run(cfg, Path(tmp))
        return metrics, time.process_time() - t0


def run_cell(cell: Cell) -> dict:
    """Probe the speed, then train for the budget; the end-of-run metrics plus steps and CPU s."""
    import torch

    from genrun.config import register

    torch.set_num_threads(1)
    register()
    logging.getLogger("genrun").setLevel(logging.WARNING)
    overrides = [*cell.overrides, f"trainer.seed={cell.seed}"]
    n = cell.probe_steps  # two probes, n and 3n steps, separate the per-step cost from the fixed one
    timed_run(overrides, 2)  # first, pay the process's one-time costs (imports, allocator warm-up)
    _, short_s = timed_run(overrides, n)
    _, long_s = timed_run(overrides, 3 * n)
    per_step = (long_s - short_s) / (2 * n)
    if per_step < 0.3 * long_s / (3 * n):  # noise swamped the difference: take the plain average
        per_step = long_s / (3 * n)
    fixed = max(short_s - n * per_step, 0.0)
    steps = max(n, int(cell.fill * (cell.budget_s - fixed) / per_step))
    print(f"{cell.dataset} {cell.method} seed {cell.seed}: {1000 * per_step:.1f} CPU ms/step, {steps} steps",
          file=sys.stderr, flush=True)
    metrics, cpu_s = timed_run(overrides, steps)
    return {"steps": steps, "cpu_s": cpu_s, "modes": metrics.get("modes"), "hq": metrics.get("hq"),
            "rkl": metrics.get("kl_to_uniform")}  # PacGAN's reverse KL (metrics.json's kl_to_uniform)


def mean_se(values: list[float]) -> str:
    """`m ± se` over seeds (just `m` for one seed); `n/a` when nothing was measured."""
    if not values:
        return "n/a"
    m = statistics.fmean(values)
    if len(values) == 1:
        return f"{m:.3g}"
    return f"{m:.3g} ± {statistics.stdev(values) / math.sqrt(len(values)):.2g}"


def table_row(dataset: str, method: str, results: list[dict], budget_s: float) -> str:
    """One method's row; a run meets the goal only with its metrics and within its CPU budget."""
    rkls = [r["rkl"] for r in results if r["rkl"] is not None]
    rkl = mean_se(rkls) + ("" if len(rkls) == len(results) else f" ({len(results) - len(rkls)} runs had no HQ sample)")
    goal_modes, goal_hq, goal_rkl = GOALS[dataset]
    met = sum(r["modes"] >= goal_modes and r["hq"] >= goal_hq and r["rkl"] is not None and r["rkl"] <= goal_rkl
              and r["cpu_s"] <= budget_s for r in results)
    steps = statistics.fmean(r["steps"] for r in results)
    cpu = statistics.fmean(r["cpu_s"] for r in results)
    return (f"| {dataset} | {method} | {len(results)} | {steps:.0f} | {cpu:.0f} | "
            f"{mean_se([r['modes'] for r in results])} | {mean_se([r['hq'] for r in results])} | {rkl} | "
            f"{met}/{len(results)} |")


def markdown(results: dict[tuple[str, str], list[dict]], budgets: dict[str, float]) -> str:
    lines = [
        "| data | method | seeds | steps | CPU s | modes | HQ % | reverse KL | runs meeting goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    datasets = list(dict.fromkeys(d for d, _ in results))
    for dataset in datasets:
        for (d, method), rs in results.items():
            if d == dataset:
                lines.append(table_row(dataset, method, rs, budgets[dataset]))
        for d, method, modes, hq, rkl in PUBLISHED:
            if d == dataset:
                lines.append(f"| {d} | {method} | | | | {modes} | {hq} | {'' if rkl is None else rkl} | |")
    goals = "; ".join(f"{d}: {m}/{m} modes, HQ >= {h}%, rKL <= {k}" for d, (m, h, k) in GOALS.items())
    budget = ", ".join(f"{d} {budgets[d]:.0f} CPU s" for d in datasets)
    lines += ["", f"Budget per run: {budget} (one thread); mean ± standard error over seeds. Goal: {goals}; a run "
              "counts only if it also ended within its budget. Published rows trained far longer (PacGAN: 400 epochs of 100k points)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, help="NAME or NAME:OVERRIDE,...")
    parser.add_argument("--datasets", nargs="+", default=["ring8", "grid25"], choices=sorted(GOALS))
    parser.add_argument("--budget-s", default="ring8=120,grid25=300", help="CPU s per run: 300 or ring8=120,...")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--probe-steps", type=int, default=150, help="steps of the speed probe")
    parser.add_argument("--fill", type=float, default=0.85,
                        help="share of the budget the probe's estimate aims at: late steps cost more CPU than "
                             "the probe's early ones (measured 5-25%% more), and a run must end within budget")
    parser.add_argument("--jobs", type=int, default=1, help="cells run in this many processes")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write the table to")
    args = parser.parse_args(argv)
    budgets = parse_budget(args.budget_s)
    cells = [Cell(*parse_method(spec, d), d, seed, budgets[d], args.probe_steps, args.fill)
             for d in args.datasets for spec in args.methods for seed in args.seeds]
    results: dict[tuple[str, str], list[dict]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for cell, result in zip(cells, pool.map(run_cell, cells), strict=True):
            results.setdefault((cell.dataset, cell.method), []).append(result)
            print(f"{cell.dataset} {cell.method} seed {cell.seed}: {result}", file=sys.stderr, flush=True)
    text = markdown(results, budgets)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
