"""How tests/data/legacy/*.pt were written: checkpoints of genrun as it was at commit ce66c54
(before the train.py split and checkpoint version 2), kept so that tests/test_legacy.py can
check that runs already on disk still resume, bit-exactly, with today's code.

Each case trains 4 steps (checkpoint at step 4, kept as <case>.pt), then resumes to step 8 with
that same old code; <case>.end.pt keeps the step-8 weights (every net's state dict) and
<case>.json the sha256 of those weights on the machine that wrote them (bit-exact there; other
CPUs round differently, so the test compares the stored weights within 1e-5). Rerunning this file
with today's genrun would write today's checkpoints, not legacy ones: it is a record.

    python tests/data/legacy/make.py
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import torch

from genrun.config import register
from genrun.engine.checkpoint import load_checkpoint

HERE = Path(__file__).parent
COMMON = ["trainer=debug", "trainer.batch_size=8", "eval=debug", "metrics=[]", "trainer.ckpt_every=4",
          "trainer.sample_every=100", "trainer.log_every=2", "dataset.image_size=16"]
CASES = {
    "dcgan": ["model=dcgan", "loss=wgan_gp", "model.generator.width=8", "model.discriminator.width=8"],
    "vae": ["model=vae", "dataset.binarize=dynamic", "model.encoder.width=8", "model.decoder.width=8"],
    "aae": ["model=aae", "model.stochastic_encoder=true", "model.encoder.width=8", "model.decoder.width=8",
            "model.discriminator.width=16"],
    "infogan": ["model=infogan", "loss=nsgan", "model.generator.width=8", "model.discriminator.width=8",
                "model.features=16"],
}


def weights_sha256(checkpoint: dict) -> str:
    """sha256 of every network's tensors, by net name and key in sorted order."""
    h = hashlib.sha256()
    nets = checkpoint["pipeline"]["nets"]
    for name in sorted(nets):
        for key in sorted(nets[name]):
            h.update(f"{name}.{key}".encode())
            h.update(nets[name][key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    from hydra import compose, initialize_config_module

    from genrun.task import resume_config
    from genrun.train import run

    register()
    torch.set_num_threads(1)
    for case, overrides in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            with initialize_config_module("genrun.configs", version_base=None):
                cfg = compose("config", overrides=[*COMMON, *overrides, "trainer.max_steps=4"])
            run(cfg, folder)
            shutil.copyfile(folder / "checkpoints" / "last.pt", HERE / f"{case}.pt")
            half = load_checkpoint(folder / "checkpoints" / "last.pt")
            run(resume_config(half["config_raw"], ["trainer.max_steps=8"], str(folder)), folder, half)
            end = load_checkpoint(folder / "checkpoints" / "last.pt")
            torch.save(end["pipeline"]["nets"], HERE / f"{case}.end.pt")
            record = {"step": int(end["step"]), "weights_sha256": weights_sha256(end), "overrides": overrides}
            (HERE / f"{case}.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
# Note: the checkpoints of that commit saved the preview batch as a view of the whole training
# set (torch.save keeps a view's storage); the files here were re-saved with that batch cloned,
# which changes no value, to keep them small.
