"""Discrete BGAN (Hjelm et al. 2018) against the continuous-relaxation baseline: sample quality of a
generator of discrete pixels trained by the boundary-seeking GAN's importance-sampling estimator, and
by the Gumbel-softmax relaxation, under one CPU budget each.

    .venv/bin/python scripts/bench_discrete_bgan.py --budget 600
    .venv/bin/python scripts/bench_discrete_bgan.py --dataset binarized_mnist --mnist ../shared/data/mnist --budget 900

Each row is a genrun run of `model=discrete_gan` (a categorical over the data's levels per pixel; DCGAN
networks): `loss=bgan` draws `model.samples_per_z` (M = 20) samples per z and weights them by the
normalised importance weights of the critic; `loss=nsgan` and `loss=wgan_gp` train through Gumbel-softmax
samples (temperature `model.temperature`). Data: `quantized_digits` (scikit-learn's digits at 16 px,
`--levels` grey levels) or `binarized_mnist` (MNIST's test split at 32 px, dynamically binarised). The
samples (hard draws) are scored by the dataset's metrics in genrun's classifier feature space: FID,
class-histogram KL and the classifier Inception Score, each with its real-vs-real floor (held-out
images in place of samples). Hjelm et al. report discrete MNIST and quantised CelebA qualitatively and
by other measures, so no published number is printed beside ours.
"""

from __future__ import annotations

import argparse

import torch
from budgeted import budgeted_run, number, table

METHODS = {  # name -> overrides on model=discrete_gan
    "discrete BGAN (importance sampling, M=20)": ["loss=bgan"],
    "Gumbel-softmax relaxation, nsgan": ["loss=nsgan"],
    "Gumbel-softmax relaxation, wgan_gp": ["loss=wgan_gp"],
}
KEYS = ("fid", "class_kl", "cis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="quantized_digits", choices=["quantized_digits", "binarized_mnist"])
    parser.add_argument("--mnist", help="MNIST root (binarized_mnist): the t10k IDX files (.gz ok) or ROOT/MNIST/raw")
    parser.add_argument("--levels", type=int, default=4, help="grey levels of quantized_digits")
    parser.add_argument("--budget", type=float, default=600.0, help="CPU-seconds of training per run")
    parser.add_argument("--samples", type=int, default=5000, help="samples scored per model")
    parser.add_argument("--only", nargs="*", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--probe", type=int, default=20, help="steps timed to fit the budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.dataset == "binarized_mnist":
        if not args.mnist:
            parser.error("--dataset binarized_mnist needs --mnist")
        data = ["dataset=mnist", f"dataset.root={args.mnist}", "dataset.train_split=test", "dataset.binarize=dynamic"]
    else:
        data = ["dataset=quantized_digits", f"dataset.levels={args.levels}"]
    base = ["model=discrete_gan", *data, "metrics=[fid,class_kl,cis]", f"eval.n_fake={args.samples}",
            "trainer.device=cpu", f"trainer.num_threads={args.threads}", *args.set]
    rows, floor = [], {}
    for name in args.only:
        result = budgeted_run([*base, *METHODS[name]], args.budget, probe=args.probe)
        floor = floor or result["floor"]
        print(f"{name}: " + ", ".join(f"{k} {number(result.get(k))}" for k in KEYS) +
              f" after {result['steps']} steps ({result['cpu_s']:.0f} CPU-s)\n  {result['command']}", flush=True)
        rows.append([name, *(number(result.get(k)) for k in KEYS), result["steps"], "genrun, this budget"])
    rows.append(["held-out images (real vs real)", *(number(floor.get(k)) for k in KEYS), "-", "genrun, the floor"])
    what = f"digits quantised to {args.levels} levels, 16 px" if args.dataset == "quantized_digits" else \
        "MNIST's test split, dynamically binarised, 32 px"
    print(f"\n{what}; {args.samples} samples per model; {args.budget:.0f} CPU-s of training per run, {args.threads} "
          f"threads, torch {torch.__version__}\n")
    print(table(["method", "FID (classifier features)", "class KL", "classifier IS", "steps", "source"], rows))


if __name__ == "__main__":
    main()
