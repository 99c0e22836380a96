"""How long does `genrun --help` take, next to importing Hydra alone?

Both are timed as fresh processes (what a user waits for), alternating, --repeats times each; the
report is the median wall time of each and their difference (genrun's own cost on top of Hydra).
Run it alone on the machine.

    .venv/bin/python scripts/bench_help.py                 # 7 repeats
    .venv/bin/python scripts/bench_help.py --repeats 15 -- model=vae --help
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall_s(cmd: list[str]) -> float:
    """Seconds one run of `cmd` takes (its output discarded; a failure is an error)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("args", nargs="*", default=["--help"], help="genrun's arguments (default: --help)")
    args = parser.parse_args()
    commands = {
        "python -c 'import hydra'": [sys.executable, "-c", "import hydra"],
        f"genrun {' '.join(args.args)}": [sys.executable, "-c", "from genrun.cli import main; main()", *args.args],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the file cache once
        wall_s(cmd)
    for _ in range(args.repeats):
        for name, cmd in commands.items():
            times[name].append(wall_s(cmd))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"| command | median s ({args.repeats} runs) | min s | max s |\n| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        print(f"| `{name}` | {medians[name]:.3f} | {min(values):.3f} | {max(values):.3f} |")
    hydra, genrun = medians.values()
    print(f"\ngenrun's own cost on top of importing Hydra: {genrun - hydra:.3f} s")


if __name__ == "__main__":
    main()
