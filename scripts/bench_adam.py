"""Adam's three torch implementations side by side on one genrun model: per-tensor loop
(torch's CPU default), foreach, and fused (genrun's default, `optimizer.fused=true`).

Each variant is built from the same config and trained with the update the loop runs
(genrun.engine.updates); rounds interleave the variants so that the machine's drift hits them alike. Reports
CPU ms per step (time.process_time, one thread) and each variant's ratio to the default loop.

    .venv/bin/python scripts/bench_adam.py                          # best_ring8's networks
    .venv/bin/python scripts/bench_adam.py --set experiment=best_grid25 --rounds 10
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_module

from genrun.build import build_data, build_pipeline
from genrun.config import register
from genrun.data.bundle import Batches
from genrun.engine.updates import train_step
from genrun.pipelines.base import Pipeline

VARIANTS = {"loop": ["optimizer.fused=false"], "foreach": ["optimizer.fused=false"], "fused": ["optimizer.fused=true"]}
ROLES = ("generator", "discriminator")


def build(overrides: list[str], variant: str) -> tuple[Pipeline, Batches]:
    extra = [f"+optimizer.{role}.foreach=true" for role in ROLES] if variant == "foreach" else []
    with initialize_config_module("genrun.configs", version_base=None):
        cfg = compose("config", overrides=[*overrides, "trainer.device=cpu", *VARIANTS[variant], *extra])
    data = build_data(cfg)
    return build_pipeline(cfg, torch.device("cpu")), Batches(data, int(cfg.trainer.batch_size), torch.device("cpu"), 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", nargs="*", default=["experiment=best_ring8"], help="genrun overrides")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=300, help="steps per variant per round")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    register()
    runs = {v: build(args.set, v) for v in VARIANTS}
    spent = dict.fromkeys(VARIANTS, 0.0)
    for _ in range(args.rounds):
        for variant, (pipeline, batches) in runs.items():
            t0 = time.process_time()
            for _ in range(args.steps):
                train_step(pipeline, batches)
            spent[variant] += time.process_time() - t0
    n = args.rounds * args.steps
    print(f"| Adam | CPU ms/step | vs loop |  ({' '.join(args.set)}, {n} steps each, one thread)")
    print("| --- | ---: | ---: |")
    for variant, seconds in spent.items():
        print(f"| {variant} | {1000 * seconds / n:.2f} | {seconds / spent['loop']:.2f} |")


if __name__ == "__main__":
    main()
