"""What the encoder and code families learn on digits, within a CPU time budget.

1. InfoGAN: accuracy of its categorical code on held-out digits (the code's values matched
   one-to-one to the classes), checked every --eval-every steps until --infogan-budget
   CPU-seconds are spent or trainer.max_steps are done (goal: >= 90% at the end, within 600 s).
   With --mnist DIR it trains on MNIST's 10k test images instead (the IDX files
   t10k-{images-idx3,labels-idx1}-ubyte.gz in DIR, resized to --mnist-size) and scores the
   code on those same images, the unsupervised-clustering protocol of Chen et al. 2016 (5% error).
2. Linear probes: a logistic regression on the codes of bigan, aae and vae (trained on the
   training split, scored on the held-out split) beside the same probe on raw pixels, after
   --probe-budget CPU-seconds of training each.

Each model is built from its config exactly as `genrun model=... dataset=digits` builds it
(InfoGAN with its preset `experiment=infogan_digits`, plus --set overrides) and trained with
the same update the loop runs (genrun.engine.updates, LR schedules included); metrics are the
family's own metrics of the run's evaluator (metrics=auto; the probe's floor is the probe on
pixels), as metrics.json has them. --seeds N trains InfoGAN with trainer.seed 0..N-1 and gives
the mean and spread of its code accuracy. Prints a Markdown table. CPU time is the process's.

    .venv/bin/python scripts/bench_families.py                                   # ~25 CPU-min
    .venv/bin/python scripts/bench_families.py --infogan-budget 300 --probe-budget 60
    .venv/bin/python scripts/bench_families.py --only infogan --set infogan:model.lambda_info=2
    .venv/bin/python scripts/bench_families.py --only infogan --seeds 3 --infogan-budget 100000   # the preset, 3 seeds
    .venv/bin/python scripts/bench_families.py --only infogan --mnist ../shared/data/mnist --infogan-budget 900
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import get_class

from genrun.build import build_data, build_evaluator, build_pipeline, with_metrics_expanded
from genrun.config import register
from genrun.data.bundle import Batches, DataBundle
from genrun.engine.updates import Updater
from genrun.pipelines.base import Pipeline

FAMILIES = ("infogan", "bigan", "aae", "vae")
DEFAULTS = {"infogan": ["experiment=infogan_digits"]}  # the preset README names for this goal


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format, gzipped): a big-endian header, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist_test_set(root: Path, image_size: int) -> DataBundle:
    """MNIST's 10k test images in [-1, 1] at image_size px, as both the training and scored split."""
    images = torch.tensor(read_idx(root / "t10k-images-idx3-ubyte.gz"), dtype=torch.float32).unsqueeze(1) / 255
    labels = torch.tensor(read_idx(root / "t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    if image_size != images.shape[-1]:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True)
    x = (images.clamp(0, 1) * 2 - 1).contiguous()
    return DataBundle(train=x, labels=labels, test=x, test_labels=labels)


def compose(model: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("genrun.configs", version_base=None):
        return hydra_compose("config", overrides=[f"model={model}", "dataset=digits", "trainer.device=cpu",
                                                  *overrides])


def train(model: str, overrides: list[str], budget_s: float, eval_every: int,
          report: Callable[[int, float, dict], None], data: DataBundle | None = None) -> tuple[int, float, dict]:
    """Train until `budget_s` CPU-seconds are spent or trainer.max_steps are done (as the CLI
    would: the LR schedule ends there); evaluate every `eval_every` steps and at the end.
    `data` replaces the config's dataset (its images must have dataset.image_size pixels)."""
    cfg = with_metrics_expanded(compose(model, overrides))
    own = get_class(cfg.model._target_).default_metrics
    cfg.metrics = {k: v for k, v in cfg.metrics.items() if k in own}  # the family's own metrics
    torch.manual_seed(int(cfg.trainer.seed))
    data = data if data is not None else build_data(cfg)
    pipeline: Pipeline = build_pipeline(cfg, torch.device("cpu"))
    evaluator, updater = build_evaluator(cfg, torch.device("cpu")), Updater("cpu")
    batches = Batches(data, int(cfg.trainer.batch_size), torch.device("cpu"), int(cfg.trainer.seed))

    def evaluate() -> dict:
        evaluation = evaluator(pipeline, data, "test")
        return {**evaluation.values, **{f"{k} ({evaluation.protocol['floor_of'][k]})": v
                                        for k, v in evaluation.floor.items()}}

    start, step, metrics = time.process_time(), 0, {}
    while (spent := time.process_time() - start) < budget_s and step < int(cfg.trainer.max_steps):
        step += 1
        updater.step(pipeline, batches, step)
        if eval_every and step % eval_every == 0:
            metrics = evaluate()
            report(step, time.process_time() - start, metrics)
    metrics = evaluate()
    report(step, spent, metrics)
    return step, spent, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--infogan-budget", type=float, default=600.0, help="CPU-seconds for InfoGAN")
    parser.add_argument("--probe-budget", type=float, default=300.0, help="CPU-seconds per probed family")
    parser.add_argument("--eval-every", type=int, default=500, help="InfoGAN evaluation interval (steps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time counts all of them)")
    parser.add_argument("--only", nargs="*", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--set", action="append", default=[], metavar="FAMILY:KEY=VALUE",
                        help="a config override for one family, e.g. infogan:model.lambda_info=2")
    parser.add_argument("--mnist", type=Path, metavar="DIR",
                        help="train and score InfoGAN on MNIST's 10k test images (IDX .gz files in DIR)")
    parser.add_argument("--mnist-size", type=int, default=16, help="MNIST's 28 px resized to this (16 or 32)")
    parser.add_argument("--seeds", type=int, default=1, help="InfoGAN: train with trainer.seed 0..N-1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register()
    extra = {f: DEFAULTS.get(f, []) + [s.split(":", 1)[1] for s in args.set if s.split(":", 1)[0] == f]
             for f in FAMILIES}
    mnist = None
    if args.mnist is not None:
        mnist = mnist_test_set(args.mnist, args.mnist_size)
        extra["infogan"].append(f"dataset.image_size={args.mnist_size}")
    rows, accuracies = [], []
    for family in args.only:
        infogan = family == "infogan"
        budget = args.infogan_budget if infogan else args.probe_budget
        for seed in range(args.seeds if infogan else 1):
            overrides = [*extra[family], f"trainer.seed={seed}"] if infogan and args.seeds > 1 else extra[family]

            def report(step: int, spent: float, metrics: dict, family: str = family) -> None:
                shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items()) if v is not None)
                print(f"  {family} step {step} cpu {spent:.0f}s: {shown}", flush=True)

            step, spent, metrics = train(family, overrides, budget, args.eval_every if infogan else 0, report,
                                         mnist if infogan else None)
            rows.append((family, " ".join(overrides) or "defaults", step, spent, metrics))
            if infogan:
                accuracies.append(metrics["code_accuracy"])
    print("\n| model | overrides | steps | CPU s | code accuracy | probe (codes) | probe (pixels) | recon MSE |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for family, over, step, spent, m in rows:
        cells = [f"{m[k]:.3f}" if m.get(k) is not None else "" for k in (
            "code_accuracy", "probe_accuracy", "probe_accuracy (raw pixels)", "recon_mse")]
        print(f"| {family} | {over} | {step} | {spent:.0f} | " + " | ".join(cells) + " |")
    if len(accuracies) > 1:
        acc = np.array(accuracies)
        print(f"\nInfoGAN code accuracy over {len(acc)} seeds: mean {acc.mean():.3f}, std {acc.std(ddof=1):.3f}, "
              f"min {acc.min():.3f}, max {acc.max():.3f}")


if __name__ == "__main__":
    main()
