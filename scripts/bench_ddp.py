"""One process against N gloo processes (torchrun) on the CPU, the same run and global batch.

Runs `genrun` alone and `torchrun --standalone --nproc_per_node=N -m genrun` with the same
overrides (one after the other, never side by side), then prints the steps/s of each (the
training loop's own clock, metrics.json's steps_per_s) and the logged loss curves side by
side: they should agree in distribution, not bit for bit (each process draws its own noise).
Threads: the single process gets N threads, each of the N processes one, so both use N cores.

    .venv/bin/python scripts/bench_ddp.py                           # DCGAN on digits, 2 processes
    .venv/bin/python scripts/bench_ddp.py --set model=gan dataset=ring8 trainer.batch_size=256
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def scalars(run: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)} if tag in acc.Tags()["scalars"] else {}


def train(cmd: list[str], threads: int, folder: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([*cmd, f"hydra.run.dir={folder}"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads((folder / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--set", nargs="*", default=[], help="genrun overrides (default: the default job, DCGAN on digits)")
    args = parser.parse_args()
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    overrides = ["trainer.device=cpu", f"trainer.max_steps={args.steps}", f"trainer.log_every={args.log_every}",
                 "trainer.sample_every=100000", "trainer.ckpt_every=100000", *args.set]
    with tempfile.TemporaryDirectory() as tmp:
        single = train([sys.executable, "-m", "genrun", *overrides], args.nproc, Path(tmp) / "one")
        multi = train([torchrun, "--standalone", f"--nproc_per_node={args.nproc}", "-m", "genrun", *overrides], 1,
                      Path(tmp) / "many")
        curves = {name: {tag: scalars(Path(tmp) / name, tag) for tag in ("loss/d", "loss/g")}
                  for name in ("one", "many")}
    print(f"overrides: {' '.join(overrides)}")
    print("\n| processes | threads each | steps/s | time s | weights in sync |\n|---:|---:|---:|---:|---|")
    print(f"| 1 | {args.nproc} | {single['steps_per_s']:.2f} | {single['time_s']:.1f} | |")
    print(f"| {args.nproc} | 1 | {multi['steps_per_s']:.2f} | {multi['time_s']:.1f} | {multi.get('weights_in_sync')} |")
    print(f"\nspeed-up {multi['steps_per_s'] / single['steps_per_s']:.2f}x\n")
    print(f"| step | loss/d (1) | loss/d ({args.nproc}) | loss/g (1) | loss/g ({args.nproc}) |\n|---:|---:|---:|---:|---:|")
    for step in sorted(curves["one"]["loss/d"]):
        row = [curves[n][t].get(step, float("nan")) for t in ("loss/d", "loss/g") for n in ("one", "many")]
        print(f"| {step} | " + " | ".join(f"{v:.4f}" for v in row) + " |")


if __name__ == "__main__":
    main()
