"""Adversarial domain adaptation on a synthetic target: target accuracy of source-only training, DANN
(gradient reversal), Feutry et al.'s marginal variant and training on the target's labels, under one CPU
budget each.

    .venv/bin/python scripts/bench_dann.py --mnist ../shared/data/mnist --budget 600
    .venv/bin/python scripts/bench_dann.py --mnist ../shared/data/mnist --dataset digits_mnist --budget 300

Each row is a genrun run (`model=dann`, `model.invariance=none|reversal|marginal`; train-on-target:
`dataset.train_domain=target`), scored by its `target_accuracy` metric on the target's held-out images
(and `source_accuracy` on the source's). dataset=mnist_textured: MNIST -> MNIST blended over procedural
colour textures (an MNIST-M-like target made without BSDS500, genrun.data.domains), 32 px;
dataset=digits_mnist: scikit-learn's digits -> MNIST (`--direction mnist_to_digits` for the other way), 16 px.

Published (Ganin & Lempitsky 2015, table 2, MNIST -> MNIST-M: source only 0.5225, DANN 0.7666, train
on target 0.9596) is printed for orientation only: MNIST-M blends BSDS500 photo patches, our target
procedural textures, so the numbers are not comparable. The paper trains with SGD (momentum 0.9, an
annealed learning rate) on 60,000 source images; here Adam (`--lr`) on MNIST's 10,000 test images
(`dataset.train_split=test`: 9,000 training digits split in halves into source and target images, 1,000
held out), for the steps the budget allows. lambda_p's schedule runs over each run's own length.
"""

from __future__ import annotations

import argparse

import torch
from budgeted import budgeted_run, number, table

METHODS = {  # name -> overrides on model=dann
    "source only": ["model.invariance=none"],
    "DANN (gradient reversal)": ["model.invariance=reversal"],
    "DANN, Feutry et al.'s marginal variant": ["model.invariance=marginal"],
    "train on target": ["model.invariance=none", "dataset.train_domain=target"],
}
PUBLISHED = {"source only": "0.5225", "DANN (gradient reversal)": "0.7666", "train on target": "0.9596"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", required=True, help="MNIST root: the t10k IDX files (.gz ok) or ROOT/MNIST/raw")
    parser.add_argument("--train-split", default="test", choices=["train", "test"])
    parser.add_argument("--dataset", default="mnist_textured", choices=["mnist_textured", "digits_mnist"])
    parser.add_argument("--direction", default="digits_to_mnist", choices=["digits_to_mnist", "mnist_to_digits"])
    parser.add_argument("--budget", type=float, default=600.0, help="CPU-seconds of training per run")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--probe", type=int, default=20, help="steps timed to fit the budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = ["model=dann", f"dataset={args.dataset}", f"dataset.root={args.mnist}", f"dataset.train_split={args.train_split}",
            f"optimizer.lr={args.lr}", f"trainer.seed={args.seed}", "trainer.device=cpu",
            f"trainer.num_threads={args.threads}", "eval.n_held_out=10000", *args.set]
    if args.dataset == "digits_mnist":
        base.append(f"dataset.direction={args.direction}")
    rows, reference = [], None
    for name in args.only:
        result = budgeted_run([*base, *METHODS[name]], args.budget, probe=args.probe)
        print(f"{name}: target {result['target_accuracy']:.4f}, source {result.get('source_accuracy', float('nan')):.4f} "
              f"after {result['steps']} steps ({result['cpu_s']:.0f} CPU-s)\n  {result['command']}", flush=True)
        rows.append([name, number(result["target_accuracy"]), number(result.get("source_accuracy")), result["steps"],
                     "genrun, this budget"])
        reference = reference or result["floor"].get("target_accuracy")
    rows.append(["logistic regression on source pixels", number(reference), "-", "-", "genrun, the metric's reference"])
    if args.dataset == "mnist_textured":
        rows += [[f"{name} (MNIST -> MNIST-M)", value, "-", "-", "published, not comparable"]
                 for name, value in PUBLISHED.items()]
    target = "MNIST over procedural textures" if args.dataset == "mnist_textured" else args.direction
    print(f"\n{target}; MNIST's {args.train_split} split; {args.budget:.0f} CPU-s of training per run, Adam {args.lr}, "
          f"{args.threads} threads, torch {torch.__version__}\n")
    print(table(["method", "target accuracy", "source accuracy", "steps", "source"], rows))


if __name__ == "__main__":
    main()
