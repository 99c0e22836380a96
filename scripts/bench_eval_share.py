"""The evaluation's share of whole runs, with an empty classifier cache and with a warm one.

Each case is a real run (genrun.train.run in a temporary folder, in this process, with its own
temporary GENRUN_CACHE): training time (metrics.json time_s), the end-of-run evaluation's own
time (protocol.seconds.total, which includes training genrun's classifier when the cache is
empty) and the evaluation's share of the whole, then the same run again with the cache warm.
  * the default job (`genrun`: DCGAN on digits, 4,000 steps);
  * `genrun dataset=stacked_mnist trainer.max_steps=1000` (the per-channel digit classifier);
  * `genrun model=vae dataset=mnist trainer.max_steps=200` (genrun's classifier on MNIST at 32 px).
The MNIST cases read MNIST's t10k files from --mnist (dataset.train_split=test: 9,000 images
train, 1,000 are held out); they are skipped without it. Run it alone on the machine.

    .venv/bin/python scripts/bench_eval_share.py --mnist ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import torch

from genrun.config import register

CASES = {
    "default job (dcgan, digits, 4000 steps)": [],
    "stacked MNIST, 1000 steps": ["dataset=stacked_mnist", "trainer.max_steps=1000"],
    "vae on MNIST 32 px, 200 steps": ["model=vae", "dataset=mnist", "trainer.max_steps=200"],
}


def run_once(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_module

    from genrun.train import run

    with initialize_config_module("genrun.configs", version_base=None):
        cfg = compose("config", overrides=[*overrides, "trainer.sample_every=100000", "trainer.ckpt_every=100000"])
    with tempfile.TemporaryDirectory() as folder:
        return run(cfg, Path(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, help="folder of MNIST's t10k IDX files (else the MNIST cases are skipped)")
    parser.add_argument("--only", nargs="*", help="substrings of the case names to run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    register()
    rows = []
    for name, overrides in CASES.items():
        if args.only and not any(part in name for part in args.only):
            continue
        mnist = any("mnist" in o for o in overrides)
        if mnist and args.mnist is None:
            continue
        extra = [f"dataset.root={args.mnist}", "dataset.train_split=test"] if mnist else []
        with tempfile.TemporaryDirectory() as cache:
            os.environ["GENRUN_CACHE"] = cache
            for state in ("empty cache", "warm cache"):
                metrics = run_once([*overrides, *extra])
                train_s, eval_s = metrics["time_s"], metrics["protocol"]["seconds"]["total"]
                accuracy = (metrics["protocol"].get("features") or {}).get("accuracy")
                rows.append((name, state, metrics["step"], train_s, eval_s, eval_s / (train_s + eval_s), accuracy))
                print(rows[-1], flush=True)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU\n")
    print("| run | classifier cache | steps | training s | evaluation s | evaluation share | classifier accuracy |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, state, steps, train_s, eval_s, share, acc in rows:
        shown = f"{acc:.4f}" if acc is not None else "-"
        print(f"| {name} | {state} | {steps} | {train_s:.1f} | {eval_s:.1f} | {100 * share:.1f}% | {shown} |")


if __name__ == "__main__":
    main()
