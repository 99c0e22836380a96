"""Several processes started by torchrun: who this process is, and the few collectives the
engine needs. Nothing here launches processes: `torchrun --nproc_per_node=N -m genrun ...`
(or srun with torchrun's environment) does, and sets RANK, WORLD_SIZE and LOCAL_RANK.

In one process (no torchrun) every function here is a no-op or returns this process's value.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from genrun.errors import GenrunError
from genrun.paths import adopt_slurm_environment
from genrun.paths import process_rank as env_rank


class ProcessGroupLost(GenrunError):
    """A collective failed because another process of the run ended (killed, crashed, its node lost)."""


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """A collective's failure (gloo: connection reset or closed by the peer; NCCL: an aborted
    communicator) as ProcessGroupLost, one line naming the cause, not the backend's traceback."""
    try:
        yield
    except RuntimeError as exc:  # torch.distributed's DistError is one too
        if not active():
            raise
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ProcessGroupLost(f"another process of this run ended during {what} ({cause[-160:]})") from exc


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 writes the run folder; the others only train."""
    return env_rank() == 0


def active() -> bool:
    """A process group of more than one process is running."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() and world_size() > 1


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return env_world_size()


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return env_rank()


def init_from_env(device_type: str) -> None:
    """Join the process group torchrun (or srun) describes (nccl on CUDA, gloo on the CPU); no-op alone."""
    adopt_slurm_environment()
    if env_world_size() <= 1 or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    if not torch.distributed.is_available():
        raise GenrunError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend=backend)


def shutdown() -> None:
    """Leave the process group (quietly after a lost peer: the run already said what happened)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        with contextlib.suppress(RuntimeError):
            torch.distributed.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """cuda -> this process's GPU (LOCAL_RANK); other devices unchanged."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def all_reduce_(tensor: Tensor, op: str = "sum") -> Tensor:
    """In place across processes (sum, mean, min or max); unchanged in one process."""
    if active():
        ops = {"sum": torch.distributed.ReduceOp.SUM, "mean": torch.distributed.ReduceOp.SUM,
               "min": torch.distributed.ReduceOp.MIN, "max": torch.distributed.ReduceOp.MAX}
        with collective("an all-reduce"):
            torch.distributed.all_reduce(tensor, op=ops[op])
        if op == "mean":
            tensor /= world_size()
    return tensor


def largest(value: int, device: torch.device) -> int:
    """The largest of the processes' values, on every process (e.g. the number of a stop signal
    that reached only some ranks; 0 where none did)."""
    if not active():
        return value
    return int(all_reduce_(torch.tensor([value], device=device), "max").item())


def gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order, on every process ([obj] alone)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    with collective("a gather"):
        torch.distributed.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every process."""
    if not active():
        return obj
    box = [obj]
    with collective("a broadcast"):
        torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        with collective("a barrier"):
            torch.distributed.barrier()
