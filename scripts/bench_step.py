"""How much does genrun's training machinery cost per step, next to a bare PyTorch loop?

Both sides train the same DCGAN (genrun.nets.conv Generator/Discriminator, same seed, same
init; or with --data ring8 the MLP GAN of model=gan on the 2D ring, where per-step overhead
weighs most) with the non-saturating loss and Adam, on the same data and batch size, in one
process:

* genrun: GANPipeline + Batches(DataBundle) trained by genrun.engine.loop.fit itself, the
  loop every run uses (one call per block: stub outputs, no-op checkpoint; sample_every and
  ckpt_every lie past the end, so the final-step flush, preview and check run once per block,
  which is why blocks are large; on a terminal fit also draws its live progress bar).
* bare: a hand-written loop: D step on x[perm-chunk] vs G(z) made under no_grad, softplus
  losses, then a G step with D's requires_grad off, zero_grad(set_to_none=True).

Blocks of --steps-per-block steps of each side alternate (ABBA order across rounds) after a
warm-up of both; the report is the median steps/s over blocks per side and genrun/bare.

    .venv/bin/python scripts/bench_step.py            # CPU, all cores, a few minutes on 2 cores
    .venv/bin/python scripts/bench_step.py --device cuda --steps-per-block 200 --rounds 10
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genrun.config import TrainerConfig
from genrun.data.bundle import Batches, DataBundle
from genrun.engine.loop import fit
from genrun.losses.adversarial import NonSaturating
from genrun.nets import mlp
from genrun.nets.conv import Discriminator, Generator
from genrun.pipelines.gan import GANPipeline

LR, BETAS = 2e-4, (0.5, 0.999)
LOG_EVERY = 50


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


def make_nets(shape: list[int], z_dim: int, width: int, seed: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The pair exactly as configs/model/dcgan.yaml builds it for images (data range [-1, 1]),
    or as configs/model/gan.yaml builds it for 2D points (MLPs of depth 3, BatchNorm in G)."""
    torch.manual_seed(seed)
    if len(shape) == 1:
        g = mlp.Generator(z_dim, shape, width=width, depth=3, batchnorm=True).to(device)
        d = mlp.Discriminator(shape, width=width, depth=3).to(device)
        return g, d
    g = Generator(z_dim, shape, width=width, out_range=(-1.0, 1.0)).to(device)
    d = Discriminator(shape, width=width, norm="batch").to(device)
    return g, d


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- genrun side -------------------------------------------------------------------------------
class _NullOutputs:
    """Stands in for RunOutputs (TensorBoard/PNG writers) when fit() itself is timed: pictures
    are still drawn (the work of rank 0), only not written."""

    main = True

    def scalars(self, step: int, values: object) -> None:
        pass

    def samples(self, step: int, samples: Tensor, name: str = "samples") -> None:
        pass


class GenrunSide:
    name = "genrun"

    def __init__(self, data: Tensor, batch: int, z_dim: int, width: int, seed: int, device: torch.device) -> None:
        g, d = make_nets(list(data.shape[1:]), z_dim, width, seed, device)
        optimizers = {
            "generator": functools.partial(torch.optim.Adam, lr=LR, betas=BETAS),
            "discriminator": functools.partial(torch.optim.Adam, lr=LR, betas=BETAS),
        }
        self.pipeline = GANPipeline(g, d, NonSaturating(), optimizers, device=device, z_dim=z_dim, n_critic=1)
        self.batches = Batches(DataBundle(train=data), batch, device, seed)
        self.device = device
        self.step = 0
        self.preview = self.pipeline.sample_noise(64, torch.Generator(device).manual_seed(seed))

    def run(self, k: int) -> None:
        far = self.step + k + 10**9
        trainer = TrainerConfig(max_steps=self.step + k, log_every=LOG_EVERY, sample_every=far, ckpt_every=far)
        fit(self.pipeline, self.batches, trainer, _NullOutputs(), lambda step: None, self.preview, self.step)
        self.step += k


# -- bare side ---------------------------------------------------------------------------------
class BareSide:
    name = "bare"

    def __init__(self, data: Tensor, batch: int, z_dim: int, width: int, seed: int, device: torch.device) -> None:
        self.g, self.d = make_nets(list(data.shape[1:]), z_dim, width, seed, device)
        self.z_dim = z_dim
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=LR, betas=BETAS)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=LR, betas=BETAS)
        self.x = data.to(device)
        self.batch, self.device = batch, device
        self.n_batches = len(data) // batch
        self.chunks: Tensor | None = None
        self.pos = 0

    def next_real(self) -> Tensor:
        if self.chunks is None or self.pos == self.n_batches:
            perm = torch.randperm(len(self.x))[: self.n_batches * self.batch]
            self.chunks = perm.view(self.n_batches, self.batch).to(self.device)
            self.pos = 0
        idx = self.chunks[self.pos]
        self.pos += 1
        return self.x[idx]

    def run(self, k: int) -> None:
        g, d, opt_g, opt_d, device, z_dim = self.g, self.d, self.opt_g, self.opt_d, self.device, self.z_dim
        for _ in range(k):
            real = self.next_real()
            n = real.shape[0]
            with torch.no_grad():
                fake = g(torch.randn(n, z_dim, device=device))
            loss_d = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            d.requires_grad_(False)
            loss_g = F.softplus(-d(g(torch.randn(n, z_dim, device=device)))).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            d.requires_grad_(True)


# -- driver ------------------------------------------------------------------------------------
def timed(side: GenrunSide | BareSide, k: int) -> float:
    """Steps per second of one block of k steps."""
    sync(side.device)
    t0 = time.perf_counter()
    side.run(k)
    sync(side.device)
    return k / (time.perf_counter() - t0)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps-per-block", type=int, default=50, help="steps of one side per timed block (one fit() call)")
    p.add_argument("--rounds", type=int, default=40, help="rounds (at most); each times one block of each side")
    p.add_argument("--min-rounds", type=int, default=6, help="rounds run even past --budget-s")
    p.add_argument("--budget-s", type=float, default=150.0,
                   help="start no new round after this many seconds (0: no limit), keeps noisy hosts bounded")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps of each side first")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32, help="4 * 2^k: 8, 16, 32, 64")
    p.add_argument("--z-dim", type=int, default=64)
    p.add_argument("--width", type=int, default=64, help="base channel count of both nets")
    p.add_argument("--n-data", type=int, default=2048, help="random images in [-1, 1]")
    p.add_argument("--data", choices=("random", "digits", "ring8"), default="random",
                   help="ring8: the 2D ring with the MLP GAN of model=gan (use --width 256 --z-dim 16 --batch 256)")
    p.add_argument("--threads", type=int, default=cores(), help="torch.set_num_threads (default: all usable cores)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")

    if args.data == "digits":
        from genrun.data.digits import load_digits

        data = load_digits(image_size=args.image_size).train
    elif args.data == "ring8":
        from genrun.data.toy2d import ring

        data = ring().train
    else:
        gen = torch.Generator().manual_seed(args.seed)
        data = torch.rand(args.n_data, 1, args.image_size, args.image_size, generator=gen) * 2 - 1

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__} | threads {torch.get_num_threads()} (cores usable {cores()}) | "
          f"device {device} ({where})")
    print(f"{'MLP GAN' if data.dim() == 2 else 'DCGAN'} {list(data.shape[1:])} z_dim {args.z_dim} width {args.width} batch {args.batch} | nsgan, "
          f"Adam {LR} {BETAS} | data {args.data} ({len(data)} images) | log_every {LOG_EVERY}"
          " | genrun via fit()")

    genrun_side = GenrunSide(data, args.batch, args.z_dim, args.width, args.seed, device)
    bare_side = BareSide(data, args.batch, args.z_dim, args.width, args.seed, device)
    for a, b in zip(genrun_side.pipeline.nets.parameters(),
                    [*bare_side.g.parameters(), *bare_side.d.parameters()], strict=True):
        assert torch.equal(a, b), "the two sides should start from identical weights"

    k = args.steps_per_block
    t_start = time.perf_counter()
    for side in (genrun_side, bare_side):
        side.run(args.warmup)
    sync(device)

    rates: dict[str, list[float]] = {"genrun": [], "bare": []}
    print(f"\n{'round':>5} {'genrun steps/s':>15} {'bare steps/s':>13} {'ratio':>7}")
    for r in range(args.rounds):
        spent = time.perf_counter() - t_start
        if r >= args.min_rounds and args.budget_s and spent > args.budget_s:
            print(f"(stopping after {r} rounds: {spent:.0f} s spent, --budget-s {args.budget_s:g})")
            break
        order = (genrun_side, bare_side) if r % 2 == 0 else (bare_side, genrun_side)  # ABBA
        got = {side.name: timed(side, k) for side in order}
        for name, v in got.items():
            rates[name].append(v)
        print(f"{r:>5} {got['genrun']:>15.3f} {got['bare']:>13.3f} {got['genrun'] / got['bare']:>7.4f}")

    med = {name: statistics.median(v) for name, v in rates.items()}
    pair = [g / b for g, b in zip(rates["genrun"], rates["bare"], strict=True)]
    ratio = med["genrun"] / med["bare"]
    print(f"\n{'side':<8} {'median steps/s':>15} {'ms/step':>9} {'min':>9} {'max':>9}")
    for name in ("genrun", "bare"):
        v = rates[name]
        print(f"{name:<8} {med[name]:>15.3f} {1000 / med[name]:>9.2f} {min(v):>9.3f} {max(v):>9.3f}")
    print(f"\nratio genrun/bare (of medians): {ratio:.4f}   "
          f"median of per-round ratios: {statistics.median(pair):.4f} "
          f"(range {min(pair):.4f}..{max(pair):.4f})   "
          f"best blocks: {max(rates['genrun']) / max(rates['bare']):.4f}")
    print(f"per-step overhead: {1000 / med['genrun'] - 1000 / med['bare']:+.3f} ms "
          f"| goal ratio >= 0.98: {'met' if ratio >= 0.98 else 'NOT met'}")
    n_rounds = len(pair)
    print(f"steps: {genrun_side.step} genrun, {args.warmup + k * n_rounds} bare "
          f"({args.warmup} warm-up + {n_rounds} x {k} timed each) in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
