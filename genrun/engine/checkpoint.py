"""Checkpoint files: a plain, versioned dict written atomically and read without pickle.

Layout of a checkpoint (all values are tensors, numbers, strings, lists or dicts):
    format, version, step, pipeline {nets, optimizers}, data {epoch, pos}, rng {...},
    sample_noise {name: tensor}, config (resolved), config_raw (with interpolations), family
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from genrun.errors import GenrunError

FORMAT = "genrun-checkpoint"
VERSION = 1


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never a torn one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint; a truncated, foreign or newer file is a clear error."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for torn or foreign files
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        first = next((ln for ln in lines if "Unpickler error" in ln), lines[0])
        raise GenrunError(f"{path} is not a readable genrun checkpoint (truncated or foreign file: {first})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GenrunError(f"{path} is not a genrun checkpoint (no '{FORMAT}' format marker)")
    if state.get("version") != VERSION:
        raise GenrunError(f"{path} has checkpoint version {state.get('version')}; this genrun reads version {VERSION}")
    return state


class CheckpointDir:
    """checkpoints/last.pt plus the newest `keep_last` step_<N>.pt files."""

    def __init__(self, folder: Path, keep_last: int) -> None:
        self.folder, self.keep_last = folder, keep_last

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    def save(self, state: dict[str, Any], step: int) -> Path:
        state = {"format": FORMAT, "version": VERSION, **state}
        if self.keep_last == 0:
            atomic_save(state, self.last)
            return self.last
        step_file = self.folder / f"step_{step}.pt"
        atomic_save(state, step_file)
        self._point_last_at(step_file)
        self._prune()
        return step_file

    def _point_last_at(self, step_file: Path) -> None:
        """last.pt becomes the same bytes as `step_file`: a hard link where possible, else a copy."""
        tmp = self.folder / f".last.pt.tmp{os.getpid()}"
        tmp.unlink(missing_ok=True)
        try:
            os.link(step_file, tmp)
        except OSError:
            shutil.copyfile(step_file, tmp)
        os.replace(tmp, self.last)
        fsync_dir(self.folder)

    def _prune(self) -> None:
        steps = sorted(self.folder.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in steps[: -self.keep_last]:
            old.unlink(missing_ok=True)
