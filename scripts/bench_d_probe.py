"""Discriminator features (Radford et al. 2016, sec. 5.1): a linear probe on a trained GAN critic's pooled
activations, beside the same probe on the critic randomly initialised and on raw pixels, at several label
budgets.

    .venv/bin/python scripts/bench_d_probe.py --mnist ../shared/data/mnist --budget 600
    .venv/bin/python scripts/bench_d_probe.py --mnist ../shared/data/mnist --models dcgan infogan --labels 10 100 500

Each model is a genrun run on MNIST (`model=dcgan` etc., 32 px, `dataset.train_split=test`: the first
9,000 test images train, the last 1,000 are held out) trained for `--budget` CPU-seconds; its last
checkpoint is then measured by the `d_probe` metric (genrun-eval run=RUN metrics=d_probe gives the same
with the default budget of 100 labels per class): every activation layer of the critic max-pooled to
4 x 4, a logistic regression fitted on `labels_per_class` training images per class (chosen with seed 0
among the first 10,000) and scored on the held-out images. `d_probe_random_critic` is the same probe on
the same architecture freshly initialised; the floor is the probe on raw pixels.

Published (for orientation, other data): DCGAN features with an L2-SVM reach 82.8% on CIFAR-10 (all
50,000 labels) and 22.48% test error on SVHN with 1,000 labels (Radford et al. 2016, tables 1 and 2);
the DCGAN there trained on ImageNet-1k (CIFAR-10) or on SVHN's unlabelled images.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from budgeted import budgeted_run, number, table

PUBLISHED = [("DCGAN features + L2-SVM, CIFAR-10, all labels (Radford et al. 2016, table 1)", "0.828"),
             ("DCGAN features + L2-SVM, SVHN, 1,000 labels (Radford et al. 2016, table 2)", "0.7752")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", required=True, help="MNIST root: the t10k IDX files (.gz ok) or ROOT/MNIST/raw")
    parser.add_argument("--train-split", default="test", choices=["train", "test"])
    parser.add_argument("--models", nargs="*", default=["dcgan"], help="GAN families to train (dcgan, infogan, ...)")
    parser.add_argument("--labels", nargs="*", type=int, default=[10, 100], help="labels per class of the probe")
    parser.add_argument("--budget", type=float, default=600.0, help="CPU-seconds of training per model")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--probe", type=int, default=20, help="steps timed to fit the budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            run = budgeted_run([f"model={model}", "dataset=mnist", f"dataset.root={args.mnist}",
                                f"dataset.train_split={args.train_split}", f"dataset.image_size={args.image_size}", "trainer.device=cpu",
                                f"trainer.num_threads={args.threads}", "metrics=[]", *args.set],
                               args.budget, probe=args.probe, folder=Path(tmp))
            print(f"{model}: {run['steps']} steps ({run['cpu_s']:.0f} CPU-s)\n  {run['command']}", flush=True)
            for k in args.labels:
                values = probe_at(Path(tmp), k)
                rows.append([f"{model} critic, trained", k, number(values["d_probe_accuracy"]), run["steps"],
                             "genrun, this budget"])
                rows.append([f"{model} critic, random initialisation", k, number(values["d_probe_random_critic"]),
                             0, "genrun"])
                if model == args.models[0]:
                    rows.append(["raw pixels", k, number(values["pixels"]), "-", "genrun, the metric's reference"])
    rows += [[name, "-", value, "-", "published, other data"] for name, value in PUBLISHED]
    print(f"\nMNIST ({args.train_split} split: 9,000 train, 1,000 held out), {args.image_size} px; {args.budget:.0f} CPU-s of GAN "
          f"training per model, {args.threads} threads, torch {torch.__version__}\n")
    print(table(["features", "labels per class", "held-out accuracy", "GAN steps", "source"], rows))


def probe_at(folder: Path, labels_per_class: int) -> dict[str, float]:
    """d_probe's numbers for the run in `folder` (its last checkpoint) with this label budget."""
    from omegaconf import OmegaConf

    from genrun.build import build_data
    from genrun.evaluation import Evaluator
    from genrun.metrics.representation import DiscriminatorProbe
    from genrun.saved_runs import load_run

    pipeline, checkpoint = load_run(folder)
    data = build_data(OmegaConf.create(checkpoint["config_raw"]))
    metric = DiscriminatorProbe(n=10_000, labels_per_class=labels_per_class)
    evaluation = Evaluator({"d_probe": metric}, None, n_fake=1)(pipeline, data)
    return {**evaluation.values, "pixels": evaluation.floor["d_probe_accuracy"]}


if __name__ == "__main__":
    main()
