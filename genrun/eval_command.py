"""genrun-eval: the metrics of trained runs, computed from their checkpoints, written to eval.json.

`run=` is a run folder, a checkpoint file, or a folder that holds runs (a multirun sweep):
then every run under it is evaluated, and a run without the checkpoint asked for is reported,
not fatal. The evaluator is the run's own (genrun.build.build_evaluator) with the command
line's choices, so `ckpt=last` with the run's own settings gives the numbers of its metrics.json.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from genrun.errors import GenrunError
from genrun.saved_runs import NoCheckpoint, checkpoint_file

USAGE = ("genrun-eval run=PATH [ckpt=last|best|FILE] [metrics=fid,kid,...] [n=N] [k=K] "
         "[features=auto|classifier|inception|raw|none] [device=auto|cpu|cuda]")
KEYS = {"run": str, "ckpt": str, "metrics": str, "n": int, "k": int, "features": str, "device": str}


def eval_config(saved: dict[str, Any], metrics: str | None, features: str | None, n: int | None,
                k: int | None = None):
    """The run's config with the command line's metrics, feature space, sample count and IWAE k."""
    from omegaconf import OmegaConf

    from genrun.options import with_eval_groups

    overrides = ([f"eval.n_fake={n}"] if n is not None else []) + ([f"eval.iwae_k={k}"] if k is not None else [])
    return with_eval_groups(OmegaConf.create(saved), {"metrics": metrics, "features": features}, overrides)


def evaluate_run(run: Path, ckpt: str = "last", metrics: str | None = None, n: int | None = None,
                 features: str | None = None, device: str = "auto", k: int | None = None) -> Path:
    """Evaluate one run's checkpoint; write eval.json beside its metrics.json and print a table."""
    from genrun.build import build_data, build_evaluator, with_metrics_expanded
    from genrun.engine.outputs import write_json
    from genrun.engine.summary import print_summary
    from genrun.paths import run_folder_of
    from genrun.saved_runs import load_run
    from genrun.schema import check_ranges

    path = checkpoint_file(run, ckpt)
    folder = run_folder_of(path)
    pipeline, checkpoint = load_run(path, device)
    cfg = with_metrics_expanded(eval_config(checkpoint["config_raw"], metrics, features, n, k))
    check_ranges(cfg)
    evaluation = build_evaluator(cfg, pipeline.device)(pipeline, build_data(cfg), "test")
    shown = str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)
    result = {"step": int(checkpoint["step"]), **evaluation.values, "floor": evaluation.floor,
              "directions": evaluation.directions,
              "protocol": {**evaluation.protocol, "checkpoint": shown, "step": int(checkpoint["step"]),
                           "skipped": evaluation.skipped, "seconds": evaluation.seconds}}
    target = write_json(folder / "eval.json", result)
    print_summary(folder, {"checkpoint": shown, **result}, title="genrun-eval")
    for name, why in evaluation.skipped.items():
        print(f"{name} did not run: {why}")
    return target


def check_arguments(metrics: str | None, n: int | None, features: str | None, k: int | None = None) -> None:
    """Bad choices fail before any run is loaded."""
    from genrun.options import choice_names, load_option

    if n is not None and n < 1:
        raise GenrunError(f"n={n}: the number of generated samples must be a positive integer (>= 1)")
    if k is not None and k < 1:
        raise GenrunError(f"k={k}: the IWAE bound's importance samples must be a positive integer (>= 1)")
    for name in choice_names(metrics) if metrics is not None else []:
        load_option("metrics", name)
    if features is not None:
        load_option("features", features)


def eval_command(run: str, ckpt: str = "last", metrics: str | None = None, n: int | None = None,
                 features: str | None = None, device: str = "auto", k: int | None = None) -> list[Path]:
    """Evaluate the run at `run`, or every run under it; returns the eval.json files written."""
    from genrun.runs import find_runs, is_run_folder

    check_arguments(metrics, n, features, k)
    folder = Path(run).expanduser()
    if folder.name == "checkpoints" and folder.is_dir():
        folder = folder.parent
    if not folder.exists():
        raise GenrunError(f"run={run}: no such file or folder (give a run folder, a sweep folder or a .pt file)")
    if folder.is_file() or is_run_folder(folder):
        return [evaluate_run(folder, ckpt, metrics, n, features, device, k)]
    runs = find_runs(folder)
    if not runs:
        raise GenrunError(f"run={run} is not a run folder and holds none (no checkpoints/, .hydra/config.yaml "
                          "or metrics.json below it)")
    written, missing, failed = [], [], []
    for one in runs:
        try:
            written.append(evaluate_run(one, ckpt, metrics, n, features, device, k))
        except NoCheckpoint as exc:
            missing.append(f"{one}: {exc}")
        except GenrunError as exc:
            failed.append(f"{one}: {exc}")
    print(f"evaluated {len(written)} of {len(runs)} runs under {folder}")
    for line in missing:
        print(f"  skipped (no checkpoint) {line}")
    if failed:
        for line in failed:
            print(f"  failed {line}", file=sys.stderr)
        raise GenrunError(f"{len(failed)} of {len(runs)} runs could not be evaluated (listed above)")
    return written
