"""How many CPU threads (and which GPU) a run takes, so that parallel jobs do not fight.

`trainer.num_threads=auto` divides this machine's cores by the number of processes that run at
once on it: the jobs Hydra's joblib launcher runs side by side (`hydra.launcher.n_jobs`) times the
processes torchrun starts per node. Two default-thread torch jobs on 2 cores ran 5x slower each
than one alone; with one thread each they ran 1.7x faster together (issue 11's measurements).
"""

from __future__ import annotations

import os

import torch

from genrun.errors import GenrunError


def cores() -> int:
    """The CPUs this process may run on (its affinity; os.cpu_count where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parallel_jobs() -> int:
    """Jobs running at once on this machine: joblib's n_jobs when it launched this job, else 1."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    launcher = HydraConfig.get().get("launcher") or {}
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = int(launcher.get("n_jobs", 1) or 1)
    return cores() if n_jobs < 0 else max(n_jobs, 1)


def processes_here() -> int:
    """Processes of this job on this machine (torchrun's LOCAL_WORLD_SIZE), times parallel jobs."""
    return parallel_jobs() * int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def thread_count(setting: str | int) -> int:
    """`auto` -> cores / processes here (at least 1); a positive integer as given."""
    text = str(setting).strip().lower()
    if text == "auto":
        return max(1, cores() // processes_here())
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise GenrunError(f"trainer.num_threads={setting!r}: valid: auto (cores / parallel jobs) or a positive integer")


def set_threads(setting: str | int) -> int:
    """Apply trainer.num_threads to torch (intra-op threads); returns the count."""
    n = thread_count(setting)
    torch.set_num_threads(n)
    return n


def device_of_job(device: torch.device) -> torch.device:
    """With several jobs at once on a machine with several GPUs, job k takes GPU k mod count."""
    from hydra.core.hydra_config import HydraConfig

    if device.type != "cuda" or device.index is not None or parallel_jobs() <= 1 or not HydraConfig.initialized():
        return device
    return torch.device("cuda", int(HydraConfig.get().job.num) % torch.cuda.device_count())
