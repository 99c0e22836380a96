"""Inception-v3, the network of the literature's FID, KID, precision/recall and Inception Score.

genrun uses torch-fidelity's FeatureExtractorInceptionV3: a port of the TensorFlow FID graph
(2015-12-05 weights, TensorFlow 1.x bilinear resize to 299x299) checked against the original;
torchmetrics' FID wraps the same class, so numbers here match both. The weight file is not
downloaded by genrun: it is `eval.inception_weights`, else the file torch-fidelity itself
caches under torch hub's folder, else the run stops at start-up saying where to put it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import DataBundle
from genrun.errors import GenrunError

# torch-fidelity's URL_INCEPTION_V3 (feature_extractor_inceptionv3.py), repeated here so the
# missing-weights message needs no import of torch-fidelity
WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")
FEATURE, LOGITS = "2048", "logits_unbiased"  # torch-fidelity's layers for FID/KID/PR and for IS
MEMO_ROWS = 50_000  # logits kept (at most ~200 MB) from feature passes for the logits() pass over the same images


def hub_weights_file() -> Path:
    """Where torch-fidelity's own download lands: torch.hub.load_state_dict_from_url stores the
    URL's file name under torch.hub.get_dir()/checkpoints ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[1]


def find_weights(path: str | None) -> Path:
    """The weight file to load: `path` when given, else torch hub's cached copy; missing -> one line."""
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise GenrunError(f"eval.inception_weights={path}: no such file; download {WEIGHTS_URL} "
                              f"and give its path (or put it in {hub_weights_file().parent})")
        return file
    file = hub_weights_file()
    if not file.is_file():
        raise GenrunError(f"the Inception-v3 weights are not here: download {WEIGHTS_URL} into {file.parent} "
                          "or pass eval.inception_weights=PATH")
    return file


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_network(weights: Path) -> torch.nn.Module:
    """torch-fidelity's Inception-v3 with `weights`, giving the pool features and the unbiased logits.
    torch-fidelity unpickles the file (weights_only=False): use a file from a source you trust."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as exc:
        raise GenrunError("features=inception needs torch-fidelity: pip install 'genrun[inception]'") from exc
    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE, LOGITS],
                                           feature_extractor_weights_path=str(weights))
    except Exception as exc:  # a torn download, another network's file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GenrunError(f"cannot load the Inception-v3 weights {weights}: {first} "
                          f"(torch-fidelity's file is {WEIGHTS_URL})") from exc


def to_uint8(x: Tensor, value_range: tuple[float, float] | None) -> Tensor:
    """Images in `value_range` (uint8 as they are) -> uint8 RGB [N, 3, H, W], torch-fidelity's input;
    rounded like torchvision's save_image, so a saved PNG reads back as the same bytes."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise GenrunError(f"features=inception needs images [N, 1 or 3, H, W], got {list(x.shape)} "
                          "(use features=raw for vectors)")
    if x.dtype != torch.uint8:
        if value_range is None:
            raise GenrunError("features=inception needs the data's pixel range (dataset.range), which is null here")
        low, high = value_range
        x = ((x.float() - low) / (high - low) * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def digest(images: Tensor) -> bytes:
    """A key for the exact bytes of a batch of uint8 images."""
    return hashlib.blake2b(images.cpu().contiguous().numpy().tobytes() + str(tuple(images.shape)).encode(),
                           digest_size=16).digest()


class InceptionFeatures:
    """`features=inception`: torch-fidelity's 2048 pool features and its unbiased logits (for IS).

    Both come out of one forward pass: the logits of a features() call are kept (MEMO_ROWS at
    most), so the evaluator's features-then-logits passes over the same images run the network once.
    """

    name = "inception"
    has_logits = True

    def __init__(self, weights: str | None = None) -> None:
        self.weights = find_weights(weights)  # at start-up: a missing file never costs a training run
        self.net = load_network(self.weights)
        self.sha256 = file_sha256(self.weights)
        self.value_range: tuple[float, float] | None = None
        self.device = torch.device("cpu")
        self._memo: OrderedDict[bytes, Tensor] = OrderedDict()

    def prepare(self, data: DataBundle, value_range: tuple[float, float] | None, device: torch.device,
                budget_s: float | None = None) -> None:
        self.value_range = tuple(value_range) if value_range is not None else None
        self.device = torch.device(device)
        self.net.to(self.device)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        images = to_uint8(x, self.value_range)
        pool, logits = self.net(images.to(self.device))
        self._memo[digest(images)] = logits.cpu()
        while sum(len(v) for v in self._memo.values()) > MEMO_ROWS:
            self._memo.popitem(last=False)
        return pool

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        images = to_uint8(x, self.value_range)
        kept = self._memo.pop(digest(images), None)
        return kept if kept is not None else self.net(images.to(self.device))[1]

    def protocol(self) -> dict[str, Any]:
        from torch_fidelity import __version__

        return {"name": "inception-v3", "implementation": f"torch-fidelity {__version__}",
                "weights": str(self.weights), "weights_sha256": self.sha256,
                "input": "uint8 RGB (1 channel repeated), resized to 299x299 bilinear as TensorFlow 1.x",
                "value_range": list(self.value_range) if self.value_range is not None else None,
                "feature": FEATURE, "logits": LOGITS}
