"""Checkpoint files: a plain, versioned dict written atomically and read without pickle.

What the dict holds is the run's business (genrun.run_state, which also upgrades older
versions); this module writes and reads the files: `format` and `version` mark them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import torch

from genrun.errors import GenrunError

FORMAT = "genrun-checkpoint"
VERSION = 2  # 2: decoders' optimizer role `decoder` (was `generator`), metric keys kl_to_uniform (were rkl, kl)


class RecordingWriter:
    """A binary file whose first OSError is kept: torch.save reports a failed write (a full
    disk) as RuntimeError('unexpected pos ...'), which hides the cause."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.error = f, None

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never a torn one; a
    failed write (e.g. no space left) is one GenrunError naming the file and the cause, and
    leaves the old file as it was.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            writer = RecordingWriter(f)
            try:
                torch.save(obj, writer)
            except RuntimeError:
                if writer.error is None:
                    raise
                raise writer.error from None
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise GenrunError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


STALE_TEMP = re.compile(r"^\..+\.tmp(\d+)$")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete `.<name>.tmp<pid>` files left by processes that died mid-write (SIGKILL)."""
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        match = STALE_TEMP.match(p.name)
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


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
    if state.get("version") not in range(1, VERSION + 1):
        raise GenrunError(f"{path} has checkpoint version {state.get('version')}; this genrun reads versions "
                          f"1 to {VERSION}")
    return state


class CheckpointDir:
    """checkpoints/last.pt plus the newest `keep_last` step_<N>.pt files (and best.pt, the state
    at the best evaluation so far, when the run evaluates during training)."""

    def __init__(self, folder: Path, keep_last: int, clean: bool = True) -> None:
        self.folder, self.keep_last = folder, keep_last
        if clean:  # the process that writes here (rank 0) removes what killed writers left
            remove_stale_temp_files(folder)

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    def save_best(self, state: dict[str, Any]) -> Path:
        """best.pt: a full checkpoint (training can continue from it), written atomically."""
        atomic_save({"format": FORMAT, "version": VERSION, **state}, self.best)
        return self.best

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
        try:
            tmp.unlink(missing_ok=True)
            try:
                os.link(step_file, tmp)
            except OSError:
                shutil.copyfile(step_file, tmp)
            os.replace(tmp, self.last)
            fsync_dir(self.folder)
        except OSError as exc:
            raise GenrunError(f"cannot write checkpoint {self.last}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _prune(self) -> None:
        steps = sorted(self.folder.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in steps[: -self.keep_last]:
            old.unlink(missing_ok=True)
