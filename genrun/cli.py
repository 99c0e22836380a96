"""Console entry points: thin wrappers that turn bad input into one line and an exit code.

Kept free of torch at import time so that `genrun --help` answers at once.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable

import hydra
from omegaconf import DictConfig

from genrun.config import register, scratch_overrides
from genrun.errors import GenrunError

log = logging.getLogger("genrun")
FAILED_JOBS: list[str] = []


def debug_enabled() -> bool:
    return os.environ.get("GENRUN_DEBUG", "") not in ("", "0") or any(
        a.startswith("hydra.verbose=") and not a.endswith(("false", "False", "[]")) for a in sys.argv[1:]
    )


def job_label() -> str:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    overrides = " ".join(hc.overrides.task)
    return f"job {hc.job.num} ({overrides})" if hc.mode.name == "MULTIRUN" else "run"


@hydra.main(version_base=None, config_path="pkg://genrun.configs", config_name="config")
def _hydra_entry(cfg: DictConfig) -> float:
    from genrun.task import hydra_job, value_for_sweeper

    try:
        return value_for_sweeper(hydra_job(cfg))
    except GenrunError as exc:
        if debug_enabled():
            raise
        log.error("error: %s", exc)
        FAILED_JOBS.append(f"{job_label()}: {exc}")
    except Exception as exc:  # a bug: in a sweep, report it and let the other jobs run
        log.error("error: %s: %s\n%s", type(exc).__name__, exc, traceback.format_exc())
        FAILED_JOBS.append(f"{job_label()}: {type(exc).__name__}: {exc}")
    return value_for_sweeper(float("nan"))


def check_output_folder(argv: list[str]) -> None:
    """Create the run (or sweep) folder named on the command line before Hydra does, so that
    one that cannot be made (a file in its path, a read-only disk) is one line, not Hydra's
    traceback. Folders with interpolations are left to Hydra."""
    from pathlib import Path

    multirun = "-m" in argv or "--multirun" in argv
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    for arg in argv:
        folder = arg[len(key):] if arg.startswith(key) else None
        if folder and "${" not in folder:
            try:
                Path(folder).expanduser().mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                print(f"genrun: error: cannot create the folder {key[:-1]}={folder}: {exc.strerror or exc}",
                      file=sys.stderr)
                sys.exit(1)


def report_earlier_attempts() -> None:
    """After a rerun of a sweep (or a requeue): how many jobs were skipped or continued."""
    from genrun.task import ATTEMPTS

    if any(ATTEMPTS.values()):
        counts = ", ".join(f"{n} {what}" for what, n in ATTEMPTS.items() if n)
        failed = f", {len(FAILED_JOBS)} failed" if FAILED_JOBS else ""
        print(f"genrun: earlier attempts in these folders: {counts}{failed}", file=sys.stderr)


HELP = """genrun is a config-driven experiment runner for deep generative models (powered by Hydra).

Usage: genrun [group=option ...] [key=value ...]     one run (genrun -m ...: a sweep; genrun resume=RUN)

== Configuration groups ==
Compose your configuration from those groups (group=option)

{groups}

== Config ==
Override anything in the config (foo.bar=value)

{config}
Use --hydra-help to view Hydra specific help; genrun-sample, genrun-eval and genrun-report --help for the others
"""


def config_groups() -> str:
    """`group: option, option, ...` for each packaged config group, read from the folders (Hydra's
    own help composes a repository per group and option: seconds, not milliseconds)."""
    from importlib.resources import files

    root = files("genrun.configs")
    lines = []
    for group in sorted((entry for entry in root.iterdir() if entry.is_dir()), key=lambda e: e.name):
        options = sorted(e.name.removesuffix(".yaml") for e in group.iterdir() if e.name.endswith(".yaml"))
        if group.name != "hydra" and options:
            lines.append(f"{group.name}: {', '.join(options)}")
    return "\n".join(lines)


def print_help(argv: list[str]) -> None:
    """`genrun [overrides] --help`: the groups and the config these overrides compose, as Hydra's
    help shows them, composed once."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = [a for a in argv if a not in ("--help", "-h")]
    try:
        with initialize_config_module("genrun.configs", version_base=None, job_name="genrun"):
            cfg = compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise GenrunError(" ".join(str(exc).split())) from exc
    print(HELP.format(groups=config_groups(), config=OmegaConf.to_yaml(cfg)))


def main() -> None:
    """`genrun [overrides]` and `genrun -m [sweep]`: exit 1 when any job failed."""
    register()
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        one_line_errors("genrun", lambda: print_help(sys.argv[1:]), 1)
        return
    sys.argv += scratch_overrides()  # last on the line: they win over the user's hydra.run.dir
    check_output_folder(sys.argv[1:])
    # a log file that cannot be written (a full disk) must not print logging's own tracebacks
    logging.raiseExceptions = debug_enabled()
    _hydra_entry()
    report_earlier_attempts()
    if FAILED_JOBS:
        if len(FAILED_JOBS) > 1 or "-m" in sys.argv or "--multirun" in sys.argv:
            print(f"genrun: {len(FAILED_JOBS)} job(s) failed:", file=sys.stderr)
            for line in FAILED_JOBS:
                print(f"  {line}", file=sys.stderr)
        sys.exit(1)


def one_line_errors(command: str, run: Callable[[], object], exit_code: int) -> None:
    """Run a console command; a GenrunError is one line `<command>: error: ...` and `exit_code`."""
    try:
        run()
    except GenrunError as exc:
        if debug_enabled():
            raise
        print(f"{command}: error: {exc}", file=sys.stderr)
        sys.exit(exit_code)


def sample_main() -> None:
    """`genrun-sample run=PATH [n=64] [out=FILE.png|.pt|.npy] [seed=0] [device=cpu] [ema=true|false]`."""
    from genrun.arguments import parse_args
    from genrun.sample import KEYS, USAGE, sample_command

    one_line_errors("genrun-sample", lambda: sample_command(**parse_args(sys.argv[1:], KEYS, USAGE)), 2)


def eval_main() -> None:
    """`genrun-eval run=PATH [ckpt=last|best|FILE] [metrics=fid,kid] [n=N] [k=K] [features=...] [device=auto]`."""
    from genrun.arguments import parse_args
    from genrun.eval_command import KEYS, USAGE, eval_command

    one_line_errors("genrun-eval", lambda: eval_command(**parse_args(sys.argv[1:], KEYS, USAGE)), 2)


def report_main() -> None:
    """`genrun-report PATH [--sort KEY] [--desc] [--filter EXPR ...] [--csv FILE] [--all-keys]`."""
    from genrun.report import report_command

    one_line_errors("genrun-report", lambda: report_command(sys.argv[1:]), 1)
