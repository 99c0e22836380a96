"""A trained run rebuilt from its checkpoint, for genrun-sample and genrun-eval: which file
`ckpt=` names, and the family with its weights on any device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genrun.errors import GenrunError

NAMED = {"last": "last.pt", "best": "best.pt"}


class NoCheckpoint(GenrunError):
    """A run lacks the checkpoint asked for (in a sweep: reported, and the other runs go on)."""


def checkpoint_file(run: Path, ckpt: str = "last") -> Path:
    """The checkpoint `ckpt` (last, best, or a file: as given or inside checkpoints/) of the run at `run`."""
    if run.is_file():
        if ckpt != "last":
            raise GenrunError(f"run={run} is a checkpoint file; ckpt={ckpt} picks a file of a run folder")
        return run
    if not run.exists():
        raise GenrunError(f"run={run}: no such file or folder (give a run folder or a .pt file)")
    if ckpt in NAMED:
        path = run / "checkpoints" / NAMED[ckpt]
        if not path.is_file():
            hint = " (a run writes it when it evaluates during training: trainer.eval_every=N)" if ckpt == "best" else ""
            raise NoCheckpoint(f"{run} has no checkpoints/{NAMED[ckpt]}{hint}")
        return path
    for path in (Path(ckpt).expanduser(), run / "checkpoints" / ckpt):
        if path.is_file():
            return path
    raise NoCheckpoint(f"ckpt={ckpt}: no such file, as given or in {run / 'checkpoints'}; valid: last, best or a .pt file")


def load_run(path: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild a run's family from its checkpoint (a run folder's last.pt, or a file; config
    included) on `device`, weights loaded (no optimizer state); returns (family, checkpoint)."""
    from omegaconf import OmegaConf

    from genrun.build import build_pipeline, pick_device
    from genrun.paths import find_checkpoint
    from genrun.run_state import read_checkpoint

    checkpoint = read_checkpoint(find_checkpoint(path), map_location="cpu")
    pipeline = build_pipeline(OmegaConf.create(checkpoint["config_raw"]), pick_device(device))
    pipeline.load_state_dict(checkpoint["pipeline"], optimizers=False)
    return pipeline, checkpoint
