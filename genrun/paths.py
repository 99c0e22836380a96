"""Where runs and checkpoints live (no torch import: used while composing the config)."""

from __future__ import annotations

import os
from pathlib import Path

from genrun.errors import GenrunError


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[007-009,012],cpu1" -> "gpu007"."""
    head = nodelist.split(",")[0] if "[" not in nodelist.split(",")[0] else nodelist[: nodelist.index("]") + 1]
    if "[" not in head:
        return head
    prefix, ranges = head.split("[", 1)
    return prefix + ranges.rstrip("]").split(",")[0].split("-")[0]


def adopt_slurm_environment(env: dict[str, str] | None = None) -> None:
    """Under srun (several SLURM tasks, no torchrun): set torchrun's RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR (the job's first node) and MASTER_PORT from SLURM's variables, so the engine's
    process group forms the same way. Variables already set (by torchrun) win."""
    env = os.environ if env is None else env
    if "RANK" in env or int(env.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in env:
        return
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = env["SLURM_NTASKS"]
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    env.setdefault("MASTER_ADDR", first_host(env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST", "localhost"))))
    env.setdefault("MASTER_PORT", str(29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000))


def process_rank() -> int:
    """This process's rank under torchrun (RANK) or srun (SLURM_PROCID), 0 alone; read before
    torch is imported."""
    adopt_slurm_environment()
    return int(os.environ.get("RANK", "0"))


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A run folder (its checkpoints/last.pt), a checkpoints folder, or a checkpoint file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise GenrunError(f"resume/run path {str(path)!r} does not exist (give a run folder or a .pt file)")
    for candidate in (p, p / "checkpoints" / "last.pt", p / "last.pt"):
        if candidate.is_file():
            return candidate
    raise GenrunError(f"{str(path)!r} holds no checkpoint (looked for checkpoints/last.pt)")


def run_folder_of(path: str | os.PathLike) -> Path:
    """The run folder a checkpoint path belongs to (for `resume=`: continue in place)."""
    p = Path(path).expanduser()
    if p.is_file():
        p = p.parent
    return p.parent if p.name == "checkpoints" else p
