"""What a run folder says about itself, read only from the files a run writes (no torch import).

`.hydra/config.yaml` and `.hydra/hydra.yaml` give its settings, `metrics.json` its results,
`genrun.log` and `checkpoints/` whether it ended, failed or is still going. genrun-report reads
runs through this module, and a run's TensorBoard hparams are written from the same functions,
so both show the same settings under the same names and the same metrics.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Lines of genrun.log that mark where an attempt (a run, or one resume of it) starts and ends:
# train.run logs START when it begins training, engine.summary logs END after metrics.json.
LOG_START = "run folder: "
LOG_END = "summary: "
# configs/hydra/job_logging/genrun.yaml: "[%(asctime)s][%(name)s][%(levelname)s] %(message)s"
LOG_LINE = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[(?P<level>[A-Z]+)\] (?P<message>.*)$")
PROGRESS = re.compile(r"^step (\d+)/\d+ ")  # engine.progress's periodic line
CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")
RECENT_S = 600  # a run without metrics.json that wrote a file this recently counts as running
SKIPPED_KEYS = {"resume"}  # how a run was started, not what it is
SKIPPED_LEAVES = {"_target_", "_partial_"}  # the group's name (a column of its own) says which class
REFERENCE = re.compile(r"^\$\{[\w.\[\]-]+\}$")  # ${model.z_dim}, ${..lr}: a copy of another key
# Runs written before metrics.json named each metric's direction (its "directions" entry) are
# read with these: keys since renamed, under today's name, and the keys whose higher value was
# better (any other key: lower, or unknown). Frozen: today's runs carry their own directions.
RENAMED_KEYS = {"rkl": "kl_to_uniform", "kl": "kl_to_uniform"}
HIGHER_BEFORE_DIRECTIONS = frozenset({
    "precision", "recall", "density", "coverage", "modes", "hq", "steps_per_s", "mi_estimate", "cis", "is", "iwae",
    "elbo", "probe_accuracy", "probe_accuracy_pixels", "code_accuracy"})


@dataclass
class Run:
    """One run folder as read from its files; `status` is one of completed, stopped by <signal>,
    failed, running, interrupted, unreadable (see `run_status`)."""

    folder: Path
    settings: dict[str, Any] = field(default_factory=dict)  # group choices + flat resolved config
    metrics: dict[str, float] = field(default_factory=dict)  # flat numeric metrics.json values
    directions: dict[str, str] = field(default_factory=dict)  # metric key -> "lower" or "higher" is better
    primary: str | None = None
    status: str = "interrupted"
    step: int | None = None
    notes: list[str] = field(default_factory=list)  # why it failed, what could not be read


def is_run_folder(folder: Path) -> bool:
    """Hydra's .hydra/config.yaml, a metrics.json or a checkpoints/ folder mark a run."""
    return ((folder / ".hydra" / "config.yaml").is_file() or (folder / "metrics.json").is_file()
            or (folder / "checkpoints").is_dir())


def natural_key(name: str | Path) -> list[Any]:
    """Sort key that puts job 2 before job 10 (numbers before text where they meet)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(name))]


def find_runs(root: Path) -> list[Path]:
    """Every run folder at or under `root`, in natural order; nothing inside a run is searched."""
    found = []
    for here, dirs, _ in os.walk(root):
        if is_run_folder(Path(here)):
            found.append(Path(here))
            dirs.clear()
    return sorted(found, key=natural_key)


def cell(value: Any) -> Any:
    """A config value as one table cell (what TensorBoard's hparams accept: str, number, bool)."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(str(cell(v)) for v in value) + "]"
    return str(value)


def flat_settings(raw: Mapping[str, Any], resolved: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> cells of a config (as written, and resolved). A key that only refers to
    another (`${model.z_dim}`, `${..lr}`) is left out: its value shows where it is set. So are
    `_target_`/`_partial_` (the group's column names the option) and `resume`."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key in SKIPPED_LEAVES or name in SKIPPED_KEYS or (isinstance(value, str) and REFERENCE.match(value)):
            continue
        if isinstance(value, Mapping):
            flat.update(flat_settings(value, resolved[key], f"{name}."))
        else:
            flat[name] = cell(resolved[key])
    return flat


def config_settings(config: Any) -> dict[str, Any]:
    """flat_settings of a DictConfig; interpolations that need genrun's resolvers stay as written."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
    try:
        resolved = OmegaConf.to_container(config, resolve=True, enum_to_str=True)
    except Exception:  # e.g. a resolver registered only inside genrun: show the text, not nothing
        resolved = raw
    return flat_settings(raw, resolved)


def group_choices(folder: Path) -> dict[str, str]:
    """The option picked in each config group (model=dcgan, loss=wgan_gp...), from the run's own
    .hydra/hydra.yaml (a resume records its own invocation elsewhere); Hydra's groups left out."""
    from omegaconf import OmegaConf

    path = folder / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return {}
    choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices", default=None)
    if choices is None:
        return {}
    return {str(k): cell(v) for k, v in OmegaConf.to_container(choices).items() if not str(k).startswith("hydra/")}


def config_file(folder: Path) -> Path:
    """The config the run last trained with: the newest resume's (.hydra/resume_<time>/), else .hydra's."""
    resumes = sorted((folder / ".hydra").glob("resume_*/config.yaml"))
    return resumes[-1] if resumes else folder / ".hydra" / "config.yaml"


def read_settings(folder: Path) -> dict[str, Any]:
    """Group choices and the flat resolved config of a run folder ({} when it has none)."""
    from omegaconf import OmegaConf

    path = config_file(folder)
    return {**group_choices(folder), **config_settings(OmegaConf.load(path))} if path.is_file() else {}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def renamed(key: str, metrics: Mapping[str, Any]) -> str:
    """A key of a run written before a rename, under today's name (unless the run has both)."""
    new = RENAMED_KEYS.get(key)
    return new if new is not None and new not in metrics else key


def metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics.json: its flat keys (renamed ones under today's names), and
    `best/<key>`, `best/step` from {"best": {"key", "value", "step"}} (the best evaluation during training)."""
    values = {renamed(k, metrics): v for k, v in metrics.items() if is_number(v)}
    best = metrics.get("best")
    if isinstance(best, Mapping) and best.get("key") and is_number(best.get("value")):
        values[f"best/{renamed(best['key'], metrics)}"] = best["value"]
        if is_number(best.get("step")):
            values["best/step"] = best["step"]
    return values


def metric_directions(metrics: Mapping[str, Any]) -> dict[str, str]:
    """Which way each key of a metrics.json is better: its own "directions" entry, or for a run
    written before it had one, HIGHER_BEFORE_DIRECTIONS."""
    own = metrics.get("directions")
    if isinstance(own, Mapping):
        return {str(k): str(v) for k, v in own.items() if v in ("lower", "higher")}
    return {renamed(k, metrics): "higher" for k in metrics if k in HIGHER_BEFORE_DIRECTIONS}


def read_metrics(folder: Path) -> dict[str, Any] | None:
    """metrics.json as a dict, None when there is none; ValueError when it cannot be read."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"metrics.json: {exc}") from exc
    if not isinstance(metrics, dict):
        raise ValueError(f"metrics.json holds a {type(metrics).__name__}, not an object")
    return metrics


@dataclass
class LogTail:
    """What genrun.log says since the last attempt that ended (its last END line)."""

    started: bool = False  # an attempt began after the last END (a resume under way, or killed)
    error: str | None = None  # the last error logged since
    step: int | None = None  # the last step logged since


def log_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(level, message) of each record of a genrun.log; continuation lines (tracebacks) skipped."""
    with open(path, errors="replace") as lines:
        for line in lines:
            match = LOG_LINE.match(line.rstrip("\n"))
            if match:
                yield match["level"], match["message"]


def read_log(folder: Path) -> LogTail:
    """The state of the run's last attempt, from genrun.log (an empty LogTail without one)."""
    tail = LogTail()
    path = folder / "genrun.log"
    if not path.is_file():
        return tail
    for level, message in log_lines(path):
        if message.startswith(LOG_END):
            tail = LogTail()
        elif message.startswith(LOG_START):
            tail.started = True
        elif level == "ERROR":
            tail.error = message.removeprefix("error: ")
        elif PROGRESS.match(message):
            tail.step = int(PROGRESS.match(message)[1])
    return tail


def checkpoint_step(folder: Path) -> int | None:
    """The newest step_<N>.pt's N (keep_last of them stay beside last.pt)."""
    steps = [int(m[1]) for p in (folder / "checkpoints").glob("step_*.pt") if (m := CHECKPOINT.match(p.name))]
    return max(steps) if steps else None


def last_write(folder: Path) -> float:
    """When the run last wrote its log, its last.pt or its TensorBoard events (0 if never)."""
    paths = [folder / "genrun.log", folder / "checkpoints" / "last.pt", *(folder / "tb").glob("events.*")]
    times = [p.stat().st_mtime for p in paths if p.is_file()]
    return max(times, default=0.0)


def unfinished_status(folder: Path, tail: LogTail, now: float) -> str:
    """A run without (current) metrics.json: `failed` when its last attempt logged an error,
    `running` when it wrote a file in the last RECENT_S seconds, else `interrupted` (killed
    without a word: out of memory, a lost node, SIGKILL; `genrun resume=FOLDER` continues it)."""
    if tail.error is not None:
        return "failed"
    return "running" if now - last_write(folder) < RECENT_S else "interrupted"


def read_run(folder: Path, now: float | None = None) -> Run:
    """Everything genrun-report shows about one run folder; unreadable files become notes."""
    run = Run(folder)
    try:
        run.settings = read_settings(folder)
    except Exception as exc:  # a damaged YAML file: show the run, say why it has no settings
        run.notes.append(f"{config_file(folder).relative_to(folder)}: {str(exc).splitlines()[0]}")
    tail = read_log(folder)
    try:
        metrics = read_metrics(folder)
    except ValueError as exc:
        run.status, run.step = "unreadable", checkpoint_step(folder)
        run.notes.append(str(exc))
        return run
    if metrics is not None and not tail.started:
        run.status = str(metrics.get("status", "completed"))
        run.metrics = metric_values(metrics)
        run.directions = metric_directions(metrics)
        run.step = metrics["step"] if is_number(metrics.get("step")) else None
        run.primary = renamed(metrics["primary"], metrics) if isinstance(metrics.get("primary"), str) else None
        return run
    run.status = unfinished_status(folder, tail, time.time() if now is None else now)
    run.step = max((s for s in (tail.step, checkpoint_step(folder)) if s is not None), default=None)
    if tail.error is not None:
        run.notes.append(tail.error)
    return run
