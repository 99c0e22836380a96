"""Exact likelihoods on MNIST: PixelCNN against the VAE's IWAE bound on binarised MNIST (nats per
image), Real NVP and NICE on 8-bit MNIST (bits per dimension), and the time each model takes to
draw a batch of samples, beside the published figures.

    .venv/bin/python scripts/bench_likelihood.py --mnist ../shared/data/mnist --budget 1800 --out likelihood.md

Protocol. Each model is its experiment preset (experiment=pixelcnn_mnist, vae_mnist,
realnvp_mnist, nice_mnist: 28 px), trained for `--budget` CPU-seconds of training steps (the
evaluations are not counted) on MNIST's t10k images alone (`dataset.train_split=test`: the first
9,000 train, of which the last 1,000 validate; the last 1,000 are the test split). Every
`--eval-every` steps the validation nll (k = 100 importance samples for the VAE) picks the best
weights, as best.pt does; those are scored on the 1,000 test images: nll in nats per image for
binarised pixels (the fixed draw of genrun's held-out binarisation, the same images for PixelCNN and
the VAE; the VAE's nll is its IWAE bound with `--k` = 5000 samples, as in Burda et al. 2016), bpd
for 8-bit pixels (one dequantisation draw per image). Sampling: the wall time of one batch of
`--sample-batch` samples from the trained model (PixelCNN: one network pass per pixel).

The published figures train on MNIST's 60,000 training images for hundreds of epochs on GPUs
(PixelCNN: 81.30 nats; Real NVP 1.06 and Glow 1.05 bits/dim, NICE 4.36); here 8,000 images and
minutes of CPU, with nets sized for it: the table says how far this budget gets, not what the
methods can reach.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time

import torch

from genrun.config import register

PRESETS = {  # name -> (experiment, data kind, the metric reported)
    "pixelcnn": ("pixelcnn_mnist", "binarised", "nll"),
    "vae": ("vae_mnist", "binarised", "nll"),
    "realnvp": ("realnvp_mnist", "8-bit", "bpd"),
    "nice": ("nice_mnist", "8-bit", "bpd"),
}
PUBLISHED = [  # (model, data, metric, value, source), on MNIST's standard split
    ("PixelCNN", "binarised", "nll", "81.30", "van den Oord et al. 2016a"),
    ("VAE, 1 stochastic layer (IWAE bound, k = 5000)", "binarised", "nll", "86.76", "Burda et al. 2016"),
    ("IWAE, 1 stochastic layer, k = 50", "binarised", "nll", "84.78", "Burda et al. 2016"),
    ("Real NVP", "8-bit", "bpd", "1.06", "Dinh et al. 2017, as tabulated by Grathwohl et al. 2019"),
    ("Glow", "8-bit", "bpd", "1.05", "Kingma & Dhariwal 2018, as tabulated by Grathwohl et al. 2019"),
    ("NICE", "8-bit", "bpd", "4.36", "Dinh et al. 2014, as tabulated by Behrmann et al. 2019"),
]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("genrun.configs", version_base=None):
        return hydra_compose("config", overrides=overrides)


def evaluator_for(overrides: list[str], metric: str, k: int, device: torch.device):
    """The run's evaluator with only the likelihood metrics (bpd reads nll's numbers: both)."""
    from genrun.build import build_evaluator

    names = "[bpd,nll]" if metric == "bpd" else "[nll]"
    return build_evaluator(compose([*overrides, f"metrics={names}", "features=none", f"eval.iwae_k={k}",
                                    "eval.floor=false"]), device)


def train_and_score(name: str, base: list[str], extra: list[str], args: argparse.Namespace) -> dict:
    """Train `name` for `args.budget` CPU-seconds of steps, keep the best validation weights, score them."""
    from genrun.build import build_data, build_pipeline
    from genrun.data.bundle import Batches
    from genrun.engine.rng import seed_everything
    from genrun.engine.updates import Updater

    experiment, kind, metric = PRESETS[name]
    overrides = [f"experiment={experiment}", *base, *extra]
    cfg = compose(overrides)
    device = torch.device(args.device)
    seed_everything(int(cfg.trainer.seed))
    data, pipeline = build_data(cfg), build_pipeline(cfg, device)
    batches = Batches(data, int(cfg.trainer.batch_size), device, int(cfg.trainer.seed))
    updater = Updater(device, cfg.trainer.precision)
    validate = evaluator_for(overrides, metric, int(cfg.eval.iwae_k), device)
    best, best_state, best_step, step, spent = math.inf, None, 0, 0, 0.0
    while spent < args.budget:
        t0 = time.process_time()
        updater.step(pipeline, batches, step + 1)
        spent += time.process_time() - t0
        step += 1
        if step % args.eval_every == 0 or spent >= args.budget:
            value = validate(pipeline, data, "validation").values["nll"]
            print(f"{name}: step {step}, {spent:.0f} CPU-s, validation nll {value:.2f}", flush=True)
            if value < best:
                best, best_step, best_state = value, step, copy.deepcopy(pipeline.state_dict())
    pipeline.load_state_dict(best_state)
    test = evaluator_for(overrides, metric, args.k if name == "vae" else int(cfg.eval.iwae_k), device)(pipeline, data, "test")
    t0 = time.perf_counter()
    pipeline.sample(args.sample_batch, torch.Generator(device).manual_seed(0))
    sample_s = time.perf_counter() - t0
    return {"name": name, "kind": kind, "metric": metric, "value": test.values[metric], "nll": test.values["nll"],
            "steps": step, "best_step": best_step, "cpu_s": spent, "sample_s": sample_s,
            "train": len(data.train), "test": test.protocol["metrics"]["nll"]["examples"]}


def table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"MNIST at 28 px, {rows[0]['train'] if rows else '?'} training images (t10k's first 9,000 less 1,000 "
             f"validating), {rows[0]['test'] if rows else '?'} test images; {args.budget:.0f} CPU-s of training "
             f"per model ({args.threads} thread(s), torch {torch.__version__}); best of the validation checks every "
             f"{args.eval_every} steps; VAE: IWAE k = {args.k}; sampling: one batch of {args.sample_batch}.", "",
             "| model | pixels | metric | value | steps (best at) | sampling s / batch | source |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['kind']} | {row['metric']} | {row['value']:.3f} | "
                     f"{row['steps']} ({row['best_step']}) | {row['sample_s']:.3g} | genrun, this budget |")
    for model, kind, metric, value, source in PUBLISHED:
        lines.append(f"| {model} | {kind} | {metric} | {value} | - | - | published ({source}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", required=True, help="MNIST root: ROOT/MNIST/raw or the t10k IDX files (.gz ok)")
    parser.add_argument("--budget", type=float, default=1800.0, help="CPU-seconds of training steps per model")
    parser.add_argument("--eval-every", type=int, default=1000, help="steps between validation checks")
    parser.add_argument("--k", type=int, default=5000, help="importance samples of the VAE's test bound")
    parser.add_argument("--sample-batch", type=int, default=16, help="samples in the timed batch")
    parser.add_argument("--only", nargs="*", choices=list(PRESETS), default=list(PRESETS))
    parser.add_argument("--set", nargs="*", default=[], metavar="MODEL:KEY=VALUE",
                        help="extra overrides of one model's preset, e.g. pixelcnn:model.net.width=32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    register()
    base = [f"dataset.root={args.mnist}", "dataset.train_split=test", f"trainer.device={args.device}"]
    rows = []
    for name in args.only:
        extra = [s.split(":", 1)[1] for s in args.set if s.split(":", 1)[0] == name]
        row = train_and_score(name, base, extra, args)
        print(f"{name}: {row['metric']} {row['value']:.3f} (nll {row['nll']:.2f} nats) after {row['steps']} steps, "
              f"{row['cpu_s']:.0f} CPU-s; {args.sample_batch} samples in {row['sample_s']:.2f} s", flush=True)
        rows.append(row)
    text = table(rows, args)
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
