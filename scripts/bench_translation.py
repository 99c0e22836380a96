"""Image-to-image translation on MNIST, each model beside the baseline that shows what its
adversarial term adds, as the papers report them, under a CPU budget per model.

    .venv/bin/python scripts/bench_translation.py --mnist ../shared/data/mnist --budget 300
    .venv/bin/python scripts/bench_translation.py --only sr inpaint --budget 600
    .venv/bin/python scripts/bench_translation.py --source digits --budget 3 --eval-n 100   # a smoke test

1. `sr`: super-resolution x4 (7 -> 28 px, `dataset=paired dataset.task=lowres dataset.scale=4`):
   bicubic up-sampling vs SRResNet (content only, pixel MSE) vs SRGAN (content on genrun's
   classifier features + 1e-3 adversarial, started from the SRResNet row's generator, as the paper
   starts SRGAN from SRResNet; in one CLI run: model.pretrain_steps). PSNR/SSIM on the luma with a
   4 px border cropped, classifier FID of the outputs. The papers' ordering: SRResNet the highest
   PSNR, SRGAN a lower PSNR but the better perceptual score (here FID): the table says if it shows.
2. `inpaint`: the centre 14x14 of 28 px digits (`dataset.task=masked dataset.mask_size=14`): the
   context encoder with L2 only (adversarial_weight=0) vs with its adversarial term: PSNR in the
   hole (`psnr_hole`) and genrun's classifier's accuracy on the completed digits.
3. `pix2pix`: edges -> digit at 32 px: L1 only (adversarial_weight=0) vs L1 + GAN (the paper's
   ablation): FID of the outputs and label preservation.
4. `cyclegan`: MNIST <-> inverted MNIST (a sanity case: the map is one line; the source's two
   halves, one per domain) and scikit-learn's digits <-> MNIST (a real style gap; both at 28 px):
   label preservation both ways and the cycle reconstruction error, with the cycle-only baseline
   (adversarial_weight=0: the identity already satisfies the cycle, the GAN must move the outputs
   into the other domain, which FID shows).

Each model is built from its config exactly as `genrun model=...` builds it (plus --set
overrides) and trained with the loop's update until --budget CPU-seconds (or --max-steps) are
spent; the numbers are the evaluator's (as metrics.json has them) on the test split: MNIST's
10,000 test images only (`dataset.train_split=test`: 9,000 train, 1,000 held out). CPU time is
the process's, over --threads threads. Prints one Markdown table per benchmark, with the
published figures (other data, other scales: their ordering is what compares) beside ours.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from genrun.build import build_data, build_evaluator, build_pipeline, with_metrics_expanded
from genrun.config import register
from genrun.data.bundle import Batches, DataBundle
from genrun.engine.updates import Updater
from genrun.metrics.translation import baseline


@dataclass
class Row:
    """One model of a benchmark: its overrides (None: the task's bicubic baseline, no training)."""

    name: str
    overrides: list[str] | None
    start_from: str | None = None  # the row whose trained generator this one starts from
    data: list[str] = field(default_factory=list)  # dataset overrides beside the benchmark's


MNIST_28 = ["dataset.image_size=28"]
BENCHMARKS: dict[str, dict[str, Any]] = {
    "sr": {
        "data": ["dataset=paired", "dataset.task=lowres", "dataset.scale=4", *MNIST_28],
        "metrics": "[paired,label_preservation,fid,kid]",
        "rows": [Row("bicubic", None), Row("SRResNet (MSE)", ["model=srresnet"]),
                 Row("SRGAN (classifier content)", ["model=srgan", "model.content=classifier", "model.pretrain_steps=0"],
                     start_from="SRResNet (MSE)")],
        "columns": ["psnr", "ssim", "fid", "label_accuracy"],
        "published": [("bicubic", {"psnr": "28.43", "ssim": "0.8211", "fid": "MOS 1.28"}),
                      ("SRResNet", {"psnr": "32.05", "ssim": "0.9019", "fid": "MOS 3.37"}),
                      ("SRGAN", {"psnr": "29.40", "ssim": "0.8472", "fid": "MOS 3.58"})],
        "source": "Ledig et al. 2017, Table 2: Set5, x4 (their perceptual score: the mean opinion score, higher is better)",
    },
    "inpaint": {
        "data": ["dataset=paired", "dataset.task=masked", "dataset.mask=centre", "dataset.mask_size=14", *MNIST_28],
        "metrics": "[paired,label_preservation,fid]",
        "rows": [Row("L2 only", ["model=context_encoder", "model.adversarial_weight=0"]),
                 Row("context encoder (L2 + adversarial)", ["model=context_encoder"])],
        "columns": ["psnr_hole", "psnr", "label_accuracy", "fid"],
        "published": [("context encoder (L2 + adversarial)", {"psnr_hole": "18.58"})],
        "source": "Pathak et al. 2016, Table 2: Paris StreetView, centre region, PSNR",
    },
    "pix2pix": {
        "data": ["dataset=paired", "dataset.task=edges", "dataset.image_size=32"],
        "metrics": "[paired,label_preservation,fid,kid]",
        "rows": [Row("L1 only", ["model=pix2pix", "model.adversarial_weight=0"]),
                 Row("L1 + GAN", ["model=pix2pix"])],
        "columns": ["fid", "label_accuracy", "psnr", "l1"],
        "published": [("L1", {"label_accuracy": "0.42"}), ("L1 + cGAN", {"label_accuracy": "0.66"}),
                      ("ground truth", {"label_accuracy": "0.80"})],
        "source": "Isola et al. 2017, Table 1: Cityscapes labels -> photo, FCN per-pixel accuracy (label preservation's "
                  "stand-in)",
    },
    "cyclegan": {
        "data": ["dataset=unpaired", *MNIST_28],
        "metrics": "[cycle,label_preservation,fid]",
        # the paper's networks at width 32 and 6 blocks cost ~3 CPU-s a step of 64 at 28 px: smaller ones here
        "settings": ["model.generator.width=16", "model.generator.blocks=3", "trainer.batch_size=16"],
        "rows": [Row(f"{task}: {model}", overrides, data=[f"dataset.source={a}", f"dataset.target={b}"])
                 for task, a, b in (("MNIST <-> inverted", "mnist", "inverted"), ("digits <-> MNIST", "digits", "mnist"))
                 for model, overrides in (("cycle only", ["model=cyclegan", "model.adversarial_weight=0"]),
                                          ("CycleGAN", ["model=cyclegan"]))],
        "columns": ["label_accuracy", "label_accuracy_back", "cycle_l1", "cycle_l1_back", "fid"],
        "published": [("CycleGAN", {"label_accuracy": "0.52 (labels -> photo)", "label_accuracy_back": "0.58 (photo -> labels)"}),
                      ("pix2pix (paired)", {"label_accuracy": "0.71 (labels -> photo)"})],
        "source": "Zhu et al. 2017, Tables 2-3: Cityscapes, FCN / per-pixel accuracy",
    },
}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("genrun.configs", version_base=None):
        return hydra_compose("config", overrides=overrides)


class Bicubic:
    """The task's baseline as a model the evaluator can measure: the input, bicubic up-sampled."""

    generative, device = True, torch.device("cpu")

    def translate(self, batch: dict) -> torch.Tensor:
        return baseline(batch["input"], batch["x"], (-1.0, 1.0)).float()

    def translation_protocol(self) -> dict:
        return {"model": "bicubic up-sampling"}


def train(cfg, data: DataBundle, budget: float, max_steps: int, start_from: Any = None) -> tuple[Any, int, float]:
    """Train until `budget` CPU-seconds or `max_steps` steps are spent; `start_from`: a trained
    pipeline whose generator this one starts from."""
    torch.manual_seed(int(cfg.trainer.seed))
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    if start_from is not None:
        pipeline.generator.load_state_dict(start_from.generator.state_dict())
    updater, batches = Updater("cpu"), Batches(data, int(cfg.trainer.batch_size), torch.device("cpu"), int(cfg.trainer.seed))
    start, step = time.process_time(), 0
    while time.process_time() - start < budget and step < max_steps:
        step += 1
        updater.step(pipeline, batches, step)
    return pipeline, step, time.process_time() - start


def run_benchmark(name: str, args: argparse.Namespace) -> list[tuple[str, int, float, dict, dict]]:
    """Every row of one benchmark: (name, steps, CPU s, values, floor)."""
    spec, rows, trained = BENCHMARKS[name], [], {}
    source = ["dataset.source=digits"] if args.source == "digits" else [
        "dataset.source=mnist", f"dataset.root={args.mnist}", "dataset.train_split=test"]
    for row in spec["rows"]:
        extra = [s.split(":", 1)[1] for s in args.set if s.split(":", 1)[0] == name]
        data_overrides = [*spec["data"], *source, *row.data]
        if args.source == "digits":
            data_overrides = [o.replace("dataset.source=mnist", "dataset.source=digits").replace(
                "dataset.target=mnist", "dataset.target=digits") for o in data_overrides]
        overrides = [*(row.overrides or ["model=srresnet"]), *data_overrides, *spec.get("settings", []),
                     "trainer.device=cpu",
                     f"metrics={spec['metrics']}", f"eval.n_held_out={args.eval_n}", f"eval.n_fake={args.eval_n}",
                     f"eval.n_real={args.eval_n * 5}", *extra]
        cfg = with_metrics_expanded(compose(overrides))
        data = build_data(cfg)
        if row.overrides is None:
            model, steps, spent = Bicubic(), 0, 0.0
        else:
            model, steps, spent = train(cfg, data, args.budget, args.max_steps, trained.get(row.start_from))
            trained[row.name] = model
        evaluation = build_evaluator(cfg, torch.device("cpu"))(model, data, "test")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in evaluation.values.items() if v is not None)
        print(f"  {name} | {row.name}: {steps} steps, {spent:.0f} CPU-s: {shown}", flush=True)
        rows.append((row.name, steps, spent, evaluation.values, evaluation.floor))
    return rows


def table(name: str, rows: list[tuple[str, int, float, dict, dict]]) -> str:
    """A Markdown table of one benchmark: genrun's rows, the floor, then the published ones."""
    spec = BENCHMARKS[name]
    columns = spec["columns"]

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))

    lines = [f"| {name} | steps | CPU s | " + " | ".join(columns) + " | source |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in columns) + " | --- |"]
    for row_name, steps, spent, values, _ in rows:
        lines.append(f"| {row_name} | {steps} | {spent:.0f} | " + " | ".join(cell(values.get(c)) for c in columns)
                     + " | genrun, this budget |")
    floor = rows[-1][4]
    lines.append("| floor (held-out data; task baseline for psnr/ssim) | | | "
                 + " | ".join(cell(floor.get(c)) for c in columns) + " | genrun |")
    for published, numbers in spec["published"]:
        lines.append(f"| {published} | | | " + " | ".join(numbers.get(c, "") for c in columns) + f" | {spec['source']} |")
    lines.append("\n" + verdict(name, rows))
    return "\n".join(lines)


def verdict(name: str, rows: list[tuple[str, int, float, dict, dict]]) -> str:
    """Whether the papers' ordering shows (super-resolution: PSNR and FID; the others: the key the
    adversarial term should improve)."""
    values = {r[0]: r[3] for r in rows}

    def get(row: str, key: str) -> float:
        value = values.get(row, {}).get(key)
        return float("nan") if value is None else float(value)

    if name == "sr":
        psnr_order = get("SRResNet (MSE)", "psnr") > get("SRGAN (classifier content)", "psnr")
        fid_order = get("SRGAN (classifier content)", "fid") < get("SRResNet (MSE)", "fid")
        return (f"Papers' ordering: SRResNet's PSNR above SRGAN's: {'yes' if psnr_order else 'NO'}; "
                f"SRGAN's FID below SRResNet's: {'yes' if fid_order else 'NO'}.")
    pairs = {"inpaint": ("L2 only", "context encoder (L2 + adversarial)", "fid"),
             "pix2pix": ("L1 only", "L1 + GAN", "fid")}
    if name in pairs:
        base, full, key = pairs[name]
        return f"The adversarial term lowers the FID: {'yes' if get(full, key) < get(base, key) else 'NO'}."
    return "; ".join(f"{task}: CycleGAN's FID below cycle-only's: "
                     f"{'yes' if get(f'{task}: CycleGAN', 'fid') < get(f'{task}: cycle only', 'fid') else 'NO'}"
                     for task in ("MNIST <-> inverted", "digits <-> MNIST")) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--budget", type=float, default=300.0, help="CPU-seconds of training per model")
    parser.add_argument("--max-steps", type=int, default=1_000_000, help="steps per model at most")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder of MNIST's t10k IDX files")
    parser.add_argument("--source", choices=["mnist", "digits"], default="mnist",
                        help="digits: scikit-learn's bundled digits in place of MNIST (smoke tests)")
    parser.add_argument("--eval-n", type=int, default=1000, help="held-out inputs translated and scored")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time counts all of them)")
    parser.add_argument("--set", action="append", default=[], metavar="BENCH:KEY=VALUE",
                        help="a config override for one benchmark's models, e.g. sr:trainer.batch_size=32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register()
    tables = []
    for name in args.only:
        tables.append(table(name, run_benchmark(name, args)))
    source = f"MNIST test images ({args.mnist})" if args.source == "mnist" else "scikit-learn's digits"
    print(f"\n{source}, {args.budget:.0f} CPU-s per model, {args.threads} thread(s), {args.eval_n} held-out inputs\n")
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
