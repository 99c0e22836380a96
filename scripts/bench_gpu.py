"""genrun's DCGAN step on a GPU against a loop written like pytorch/examples' dcgan/main.py.

Both sides train the same networks (genrun.nets.conv, DCGAN 64x64, z 100, width 64) on the
same batch size with Adam (2e-4, betas 0.5/0.999), on images already on the GPU. The examples
loop: D on the real batch (target 1) and on G(z).detach() (target 0), both backward, D step;
then G on D(G(z)) (target 1), G step; BCE on logits. genrun: GANPipeline + the engine's
Updater with the non-saturating loss (the same objective), its uint8 on-device batches, in
three settings: fp32; bf16 autocast; bf16 + channels_last + torch.compile.
Blocks of each side alternate (round robin) after a warm-up; the report is the median
images/s over blocks and the peak CUDA memory of each side.

    .venv/bin/python scripts/bench_gpu.py                    # on a CUDA machine
    .venv/bin/python scripts/bench_gpu.py --device cpu --image-size 16 --width 8 --batch 16 --steps 3 --rounds 2
On a machine without CUDA (and no --device cpu) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from genrun.data.bundle import Batches, DataBundle
from genrun.engine.updates import Updater, prepare_for_speed
from genrun.losses.adversarial import NonSaturating
from genrun.nets.conv import Discriminator, Generator
from genrun.pipelines.gan import GANPipeline

LR, BETAS = 2e-4, (0.5, 0.999)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def nets(args: argparse.Namespace, device: torch.device) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    shape = [3, args.image_size, args.image_size]
    return (Generator(args.z_dim, shape, width=args.width, out_range=(-1.0, 1.0)).to(device),
            Discriminator(shape, width=args.width).to(device))


def examples_loop(args: argparse.Namespace, device: torch.device, data: torch.Tensor) -> Callable[[], None]:
    """One iteration of pytorch/examples' dcgan/main.py (labels 1/0, BCE on D's output)."""
    g, d = nets(args, device)
    opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
    n = args.batch
    ones, zeros = torch.ones(n, 1, device=device), torch.zeros(n, 1, device=device)

    def step() -> None:
        real = data[torch.randint(len(data), (n,), device=device)].float().div_(127.5).sub_(1)
        d.zero_grad()
        F.binary_cross_entropy_with_logits(d(real), ones).backward()
        fake = g(torch.randn(n, args.z_dim, device=device))
        F.binary_cross_entropy_with_logits(d(fake.detach()), zeros).backward()
        opt_d.step()
        g.zero_grad()
        F.binary_cross_entropy_with_logits(d(fake), ones).backward()
        opt_g.step()

    return step


def genrun_step(args: argparse.Namespace, device: torch.device, data: torch.Tensor, precision: str,
                fast: bool) -> Callable[[], None]:
    g, d = nets(args, device)
    adam = functools.partial(torch.optim.Adam, lr=LR, betas=BETAS)
    pipeline = GANPipeline(g, d, NonSaturating(), {"generator": adam, "discriminator": adam}, device=device,
                           z_dim=args.z_dim)
    prepare_for_speed(pipeline, compile_nets=fast)
    if not fast and device.type == "cuda":  # prepare_for_speed always picks channels_last on CUDA
        for net in pipeline.nets.values():
            net.to(memory_format=torch.contiguous_format)
    batches = Batches(DataBundle(train=data, pixels=(-1.0, 1.0)), args.batch, device, seed=0)
    updater = Updater(device, precision)
    return lambda: updater.step(pipeline, batches, 1)  # every phase runs at every step here


def timed(step: Callable[[], None], steps: int, batch: int, device: torch.device) -> tuple[float, float]:
    """(images/s, peak MiB) of `steps` iterations."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return steps * batch / seconds, peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--z-dim", type=int, default=100)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--warmup", type=int, default=20, help="untimed steps of each side (compilation happens here)")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; run it on a machine with a GPU (or --device cpu for a smoke test)")
        return
    data = torch.randint(0, 256, (4096, 3, args.image_size, args.image_size), dtype=torch.uint8, device=device)
    sides = {
        "examples loop (fp32)": examples_loop(args, device, data),
        "genrun fp32": genrun_step(args, device, data, "32", fast=False),
        "genrun bf16": genrun_step(args, device, data, "bf16", fast=False),
        "genrun bf16 + channels_last + compile": genrun_step(args, device, data, "bf16", fast=True),
    }
    for step in sides.values():
        for _ in range(args.warmup):
            step()
    speed: dict[str, list[float]] = {name: [] for name in sides}
    peak: dict[str, float] = dict.fromkeys(sides, 0.0)
    for _ in range(args.rounds):
        for name, step in sides.items():
            images_per_s, mib = timed(step, args.steps, args.batch, device)
            speed[name].append(images_per_s)
            peak[name] = max(peak[name], mib)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"DCGAN {args.image_size}x{args.image_size}, batch {args.batch}, width {args.width} on {where}, "
          f"torch {torch.__version__}; median of {args.rounds} blocks of {args.steps} steps")
    base = statistics.median(speed["examples loop (fp32)"])
    print("\n| setting | images/s | vs examples loop | peak MiB |\n|---|---:|---:|---:|")
    for name in sides:
        median = statistics.median(speed[name])
        memory = f"{peak[name]:.0f}" if device.type == "cuda" else "-"
        print(f"| {name} | {median:.0f} | {median / base:.2f}x | {memory} |")


if __name__ == "__main__":
    main()
