"""A 4-job sweep of the default job, one job after another vs joblib with 2 workers, side by side.

    .venv/bin/python scripts/bench_sweep.py [--steps 600] [--jobs 4] [--workers 2]

Each variant runs `genrun -m trainer.seed=0,1,...` in a subprocess, as a user would; the
joblib variant adds `hydra/launcher=joblib hydra.launcher.n_jobs=WORKERS`, and both keep
`trainer.num_threads=auto` (the sequential jobs take every core, the parallel ones share them).
Also timed: the joblib sweep with torch's default threads in every job (the oversubscribed case
that trainer.num_threads=auto avoids). Run it alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def sweep(folder: str, steps: int, jobs: int, extra: list[str]) -> float:
    seeds = ",".join(str(i) for i in range(jobs))
    args = ["-m", f"trainer.max_steps={steps}", f"trainer.seed={seeds}", "trainer.sample_every=100000",
            "trainer.ckpt_every=100000", f"hydra.sweep.dir={folder}", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "genrun", *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    joblib = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.workers}"]
    variants = [
        ("sequential, num_threads=auto", []),
        (f"joblib {args.workers} workers, num_threads=auto", joblib),
        (f"joblib {args.workers} workers, every job all cores", [*joblib, f"trainer.num_threads={os.cpu_count()}"]),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for i, (name, extra) in enumerate(variants):
            seconds = sweep(os.path.join(root, str(i)), args.steps, args.jobs, extra)
            rows.append((name, seconds))
            print(f"{name}: {seconds:.1f} s", flush=True)
    base = rows[0][1]
    print(f"\n{args.jobs} jobs of the default job (dcgan on digits), {args.steps} steps each, "
          f"{os.cpu_count()} cores, end-of-run evaluation included\n")
    print("| sweep | wall s | vs sequential |\n| --- | --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {base / seconds:.2f}x |")


if __name__ == "__main__":
    main()
