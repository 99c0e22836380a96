"""Where runs and checkpoints live (no torch import: used while composing the config)."""

from __future__ import annotations

import os
from pathlib import Path

from genrun.errors import GenrunError


def process_rank() -> int:
    """This process's rank under torchrun (RANK), 0 alone; read before torch is imported."""
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
