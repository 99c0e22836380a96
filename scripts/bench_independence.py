"""Adversarial independence (Brakel & Bengio 2017): recovering independent sources from linear and
post-nonlinear mixtures, beside FastICA, under one CPU budget each.

    .venv/bin/python scripts/bench_independence.py --budget 300
    .venv/bin/python scripts/bench_independence.py --sources 3 --budget 120 --seeds 3

Each row is a genrun run (`model=independence dataset=ica`): `dataset.sources` independent non-Gaussian
sources (uniform, Laplace, a sine of uniform phase, a bimodal mixture, a centred exponential, Student's t),
mixed linearly (x = A s) or post-nonlinearly (x = tanh(A s)); a linear encoder (`model.encoder.depth=0`)
for the linear mixture, an MLP for the non-linear one, both with the decoder's reconstruction term. The
score is `source_correlation`: the mean absolute correlation of the recovered and the true sources of
5,000 held-out mixtures after the best one-to-one matching (1: perfect up to order, sign and scale); the
reference is FastICA fitted on the training mixtures (the metric's floor). --seeds N averages over
trainer seeds 0..N-1.

Brakel & Bengio 2017 measure their synthetic experiments on source signals of their own; these
sources are other (i.i.d.) draws, so no published number is printed beside ours.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from budgeted import budgeted_run, number, table

MIXTURES = {  # name -> overrides on model=independence dataset=ica
    "linear mixture, linear encoder": ["dataset.mixing=linear", "model.encoder.depth=0"],
    "post-nonlinear mixture, MLP encoder": ["dataset.mixing=post_nonlinear"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=6)
    parser.add_argument("--budget", type=float, default=300.0, help="CPU-seconds of training per run")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--probe", type=int, default=20, help="steps timed to fit the budget")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = ["model=independence", "dataset=ica", f"dataset.sources={args.sources}", f"optimizer.lr={args.lr}",
            f"trainer.batch_size={args.batch_size}", "trainer.device=cpu", f"trainer.num_threads={args.threads}",
            "eval.n_held_out=5000", *args.set]
    rows = []
    for name, extra in MIXTURES.items():
        runs = []
        for seed in range(args.seeds):
            runs.append(budgeted_run([*base, *extra, f"trainer.seed={seed}"], args.budget, probe=args.probe))
            print(f"{name}, seed {seed}: {runs[-1]['source_correlation']:.4f} (FastICA "
                  f"{runs[-1]['floor']['source_correlation']:.4f}) after {runs[-1]['steps']} steps\n"
                  f"  {runs[-1]['command']}", flush=True)
        rows.append([name, spread([r["source_correlation"] for r in runs]), runs[0]["steps"], "genrun, this budget"])
        rows.append([f"{name.split(',')[0]}, FastICA", number(runs[0]["floor"]["source_correlation"]), "-",
                     "genrun, the metric's reference (scikit-learn)"])
    print(f"\n{args.sources} sources; 20,000 training and 5,000 held-out mixtures; {args.budget:.0f} CPU-s of training "
          f"per run, {args.seeds} seed(s), {args.threads} thread(s), torch {torch.__version__}\n")
    print(table(["method", "mean abs. correlation after matching", "steps", "source"], rows))


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return number(values[0])
    return f"{statistics.fmean(values):.4f} +- {statistics.stdev(values):.4f}"


if __name__ == "__main__":
    main()
