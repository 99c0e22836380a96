"""Everything a run writes into its folder: TensorBoard events, sample pictures, metrics.json."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from genrun.engine.images import picture, save_png


class RunOutputs:
    """The run folder's writers; the loop hands it numbers and tensors, never the family."""

    def __init__(self, folder: Path, start_step: int, reference: Tensor | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = folder
        self.reference = reference
        # on resume, drop the events a killed run wrote past its checkpoint (steps > start_step)
        self.tb = SummaryWriter(log_dir=str(folder / "tb"), purge_step=start_step + 1 if start_step > 0 else None)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.tb.add_scalar(key, value, step)

    def samples(self, step: int, samples: Tensor, name: str = "samples") -> Path:
        """samples/step_<N>.png (other pictures: samples/<name>_step_<N>.png) and a TB image."""
        image = picture(samples, self.reference)
        stem = f"step_{step}" if name == "samples" else f"{name}_step_{step}"
        path = self.folder / "samples" / f"{stem}.png"
        save_png(image, path)
        self.tb.add_image(name, image, step, dataformats="HWC")
        return path

    def hparams(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """The run's settings beside its final metrics, in TensorBoard's HPARAMS tab."""
        from torch.utils.tensorboard.summary import hparams

        numeric = {f"final/{k}": float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        exp, ssi, sei = hparams(dict(params), numeric)
        writer = self.tb._get_file_writer()
        for summary in (exp, ssi, sei):
            writer.add_summary(summary)
        for key, value in numeric.items():
            self.tb.add_scalar(key, value, int(metrics.get("step", 0)))

    def metrics(self, metrics: Mapping[str, Any]) -> Path:
        """metrics.json, replaced atomically so a reader never sees half a file."""
        path = self.folder / "metrics.json"
        tmp = path.with_name(f".metrics.json.tmp{os.getpid()}")
        tmp.write_text(json.dumps(dict(metrics), indent=2, sort_keys=True, allow_nan=False) + "\n")
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        self.tb.close()
