"""Stacked MNIST mode collapse (the PacGAN/VEEGAN protocol): DCGAN, PacGAN2-4 and DCGAN+MINE
under one budget each, scored on 26,000 samples, printed beside the published table.

    .venv/bin/python scripts/bench_stacked_mnist.py --mnist ../shared/data/mnist --budget 180

Protocol (Srivastava et al. 2017; Lin et al. 2018): each of a sample's three channels is
classified by a digit classifier (here genrun's own, trained on the dataset's channels and
cached), `modes` counts the 1,000 digit triples that receive at least one of 26,000 samples and
`kl` is KL(mode histogram || uniform) in nats. The published rows train a DCGAN on 128,000
stacks of MNIST's 60,000 training digits for about 50 epochs (~100k generator steps of 64) with a
pretrained MNIST classifier; on one modern GPU that is about 15-30 minutes per model.

Here (no GPU, only MNIST's 10,000 test images): `dataset.train_split=test` draws the training
stacks from the first 9,000 test digits (the held-out stacks from the last 1,000), the budget is
CPU-seconds per model (`--budget`), and the images are `--image-size` pixels. The numbers are
therefore far from converged and not comparable to the published ones in absolute terms; what the
table shows is how each method fares under the same small budget.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from genrun.config import register
from genrun.data.bundle import Batches
from genrun.engine.updates import train_step
from genrun.evaluation import Evaluator
from genrun.metrics.stacked import StackedModes

PUBLISHED = [  # (method, modes, KL): PacGAN (Lin et al. 2018) table 3 and the lectures' MINE row
    ("DCGAN", "99", "3.4"), ("ALI", "16", "5.4"), ("Unrolled GAN", "48.7", "4.32"), ("VEEGAN", "150", "2.96"),
    ("PacGAN", "1000", "0.06"), ("DCGAN+MINE", "1000", "0.05"),
]
METHODS = {  # name -> overrides on top of model=dcgan dataset=stacked_mnist
    "dcgan": [],
    "pacgan2": ["model.pack=2", "trainer.batch_size=128"],
    "pacgan3": ["model.pack=3", "trainer.batch_size=192"],
    "pacgan4": ["model.pack=4", "trainer.batch_size=256"],
    "dcgan+mine": ["+mine=dv"],
}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("genrun.configs", version_base=None):
        return hydra_compose("config", overrides=overrides)


def train_and_score(name: str, base: list[str], budget: float, n: int, device: torch.device) -> dict:
    """Train `name` until `budget` CPU-seconds are spent, then score n samples."""
    from genrun.build import build_data, build_pipeline

    cfg = compose(["model=dcgan", "dataset=stacked_mnist", *base, *METHODS[name]])
    torch.manual_seed(int(cfg.trainer.seed))
    data = build_data(cfg)
    pipeline = build_pipeline(cfg, device)
    batches = Batches(data, int(cfg.trainer.batch_size), device, int(cfg.trainer.seed))
    start, wall, step = time.process_time(), time.perf_counter(), 0
    while time.process_time() - start < budget:
        train_step(pipeline, batches)
        step += 1
    spent, wall = time.process_time() - start, time.perf_counter() - wall
    evaluator = Evaluator({"stacked_modes": StackedModes()}, None, n_fake=n, floor=name == "dcgan",
                          value_range=(-1.0, 1.0), device=device)
    result = evaluator(pipeline, data)
    return {"name": name, "steps": step, "cpu_s": spent, "wall_s": wall, **result.values,
            "floor": result.floor, "classifier": result.protocol["metrics"]["stacked_modes"]["digit_classifier"],
            "train": len(data.train)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", required=True, help="MNIST root: ROOT/MNIST/raw or the t10k IDX files (.gz ok)")
    parser.add_argument("--train-split", default="test", choices=["train", "test"],
                        help="the MNIST split the stacks come from (test: only the t10k files exist)")
    parser.add_argument("--budget", type=float, default=180.0, help="CPU-seconds of training per model")
    parser.add_argument("--samples", type=int, default=26_000)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=128_000, help="training stacks")
    parser.add_argument("--only", nargs="*", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    register()
    base = [f"dataset.root={args.mnist}", f"dataset.train_split={args.train_split}",
            f"dataset.image_size={args.image_size}", f"dataset.size={args.size}", f"dataset.test_size={args.samples}",
            f"trainer.device={args.device}"]
    rows = []
    for name in args.only:
        row = train_and_score(name, base, args.budget, args.samples, torch.device(args.device))
        print(f"{name}: {row['steps']} steps in {row['cpu_s']:.0f} CPU-s ({row['wall_s']:.0f} s), "
              f"modes {row['modes']}, kl {row['kl']:.3f}", flush=True)
        rows.append(row)
    clf = rows[0]["classifier"]
    print(f"\nStacked MNIST: {rows[0]['train']} training stacks from MNIST's {args.train_split} split, "
          f"{args.image_size} px; {args.samples} samples per model; digit classifier held-out accuracy "
          f"{clf['accuracy']}; {args.budget:.0f} CPU-s of training per model on {args.device} "
          f"({args.threads} threads), torch {torch.__version__}\n")
    print("| method | modes (of 1000) | KL | steps | source |\n| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['name']} | {row['modes']} | {row['kl']:.3f} | {row['steps']} | genrun, this budget |")
    if rows[0].get("floor"):
        floor = rows[0]["floor"]
        print(f"| held-out stacks (real vs real) | {floor.get('modes')} | {floor.get('kl', float('nan')):.3f} | - | "
              "genrun, the floor |")
    for method, modes, kl in PUBLISHED:
        print(f"| {method} | {modes} | {kl} | - | published |")


if __name__ == "__main__":
    main()
