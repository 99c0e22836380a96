"""Everything a run writes into its folder: TensorBoard events, sample pictures, metrics.json."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from torch import Tensor

from genrun.engine.images import picture, save_png
from genrun.errors import GenrunError
from genrun.runs import metric_values


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """An OSError while writing `path` (no space left, no permission) is one GenrunError line."""
    try:
        yield
    except OSError as exc:
        raise GenrunError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_json(path: Path, obj: Mapping[str, Any]) -> Path:
    """A JSON file replaced atomically, so a reader never sees half a file (NaN is refused)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with writing(path):
            tmp.write_text(json.dumps(dict(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class RunOutputs:
    """The run folder's writers; the loop hands it numbers and tensors, never the family."""

    main = True  # this process writes the run folder (rank 0)

    def __init__(self, folder: Path, start_step: int, reference: Tensor | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = folder
        self.reference = reference
        self.tb_dir = folder / "tb"
        # on resume, drop the events a killed run wrote past its checkpoint (steps > start_step)
        with writing(self.tb_dir):
            self.tb = SummaryWriter(log_dir=str(self.tb_dir), purge_step=start_step + 1 if start_step > 0 else None)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        with writing(self.tb_dir):
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)

    def samples(self, step: int, samples: Tensor, name: str = "samples") -> Path:
        """samples/step_<N>.png (other pictures: samples/<name>_step_<N>.png) and a TB image."""
        image = picture(samples, self.reference)
        stem = f"step_{step}" if name == "samples" else f"{name}_step_{step}"
        path = self.folder / "samples" / f"{stem}.png"
        with writing(path):
            save_png(image, path)
        with writing(self.tb_dir):
            self.tb.add_image(name, image, step, dataformats="HWC")
        return path

    def hparams(self, params: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
        """The run's settings beside its final metrics (`final/<key>` for each of genrun-report's
        metric keys), in TensorBoard's HPARAMS tab. No experiment summary is written: TensorBoard
        would take the first run's as every run's columns; without one it gathers the settings
        of all runs (marking those that differ) and their scalars."""
        from torch.utils.tensorboard.summary import hparams

        numeric = {f"final/{k}": float(v) for k, v in metric_values(metrics).items()}
        _, ssi, sei = hparams(dict(params), numeric)
        with writing(self.tb_dir):
            writer = self.tb._get_file_writer()
            for summary in (ssi, sei):
                writer.add_summary(summary)
            for key, value in numeric.items():
                self.tb.add_scalar(key, value, int(metrics.get("step", 0)))

    def evaluation(self, step: int, values: Mapping[str, float | None], seconds: float) -> None:
        """An evaluation during training: `eval/<key>` for each value that exists, and its wall time."""
        self.scalars(step, {**{f"eval/{k}": v for k, v in values.items() if v is not None}, "time/eval_s": seconds})

    def metrics(self, metrics: Mapping[str, Any]) -> Path:
        """metrics.json, replaced atomically so a reader never sees half a file."""
        return write_json(self.folder / "metrics.json", metrics)

    def close(self) -> None:
        with writing(self.tb_dir):
            self.tb.close()

    def close_quietly(self) -> None:
        """Close after another error: that error is the one to report, not a second one here."""
        with suppress(GenrunError):
            self.close()


class NoOutputs:
    """What a process other than rank 0 writes under torchrun: nothing."""

    main = False

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def samples(self, step: int, samples: Tensor, name: str = "samples") -> None:
        pass

    def evaluation(self, step: int, values: Mapping[str, float | None], seconds: float) -> None:
        pass

    def hparams(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        pass

    def metrics(self, metrics: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass

    def close_quietly(self) -> None:
        pass
