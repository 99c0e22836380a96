"""SRGAN's content loss on a feature network (Ledig et al. 2017, eq. 5): the mean squared distance
of the features of the output and of the target, l = weight * ||phi(G(x)) - phi(y)||^2 / size.

ImageNet's VGG-19 cannot be downloaded here, so the feature network is a setting
(`model.content=pixel|classifier|vgg19`) and the run's protocol records which:
- `pixel`: phi = identity, the MSE of the pixels (SRResNet-MSE);
- `classifier`: genrun's own classifier of the task's targets (the one the evaluator trains and
  caches, genrun.metrics.classifier), its feature maps after the third convolution (`layer=conv3`)
  or its 128 penultimate features (`features`); built when first needed, so that sampling a
  trained run never needs it;
- `vgg19`: torchvision's VGG-19 from a weight file (`weights=PATH`, else torchvision's cache
  file `<torch hub>/checkpoints/vgg19-dcbb9e9d.pth`; never downloaded), feature maps after conv2_2
  (`layer=2_2`, the paper's VGG22, for small images) or conv5_4 (`5_4`, VGG54), grey images
  repeated to three channels and ImageNet-normalised; weight 1/12.75^2 as in the paper.
All classes share one signature so that `model.content` only swaps the `_target_` (its valid
values are this module's lower-case names: helpers are private).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from genrun.errors import GenrunError
from genrun.ranges import NonNegative

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 weights, as its cache names them
VGG_LAYERS = {"2_2": 9, "5_4": 36}  # feature layers (after the ReLU) of torchvision's vgg19().features
CLASSIFIER_LAYERS = {"conv3": 9, "features": None}  # ClassifierNet.body[:9]: the third convolution block
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Content:
    """weight * the mean squared distance of phi(output) and phi(target); phi is this class's network."""

    name = "pixel"
    default_weight = 1.0

    def __init__(self, weight: NonNegative | None = None, layer: str | None = None, data: Mapping | None = None,
                 weights: str | None = None) -> None:
        self.weight = float(weight if weight is not None else self.default_weight)
        self.layer, self.data, self.weights = layer, data, weights

    def features(self, x: Tensor) -> Tensor:
        return x

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            reference = self.features(target)
        return self.weight * (self.features(output).float() - reference.float()).pow(2).mean()

    def describe(self) -> dict[str, Any]:
        """What the protocol records: the network, its layer, the weight."""
        return {"network": self.name, "layer": self.layer, "weight": self.weight}


class ClassifierContent(Content):
    """phi: genrun's classifier of the task's targets (trained or loaded when first needed)."""

    name = "genrun-classifier"

    def __init__(self, weight: NonNegative | None = None, layer: str | None = "conv3", data: Mapping | None = None,
                 weights: str | None = None) -> None:
        super().__init__(weight, layer or "conv3", data, weights)
        if self.layer not in CLASSIFIER_LAYERS:
            raise GenrunError(f"model.content_loss.layer={self.layer!r} (model.content=classifier): valid: {', '.join(CLASSIFIER_LAYERS)}")
        if data is None:
            raise GenrunError("model.content=classifier needs a translation dataset (dataset=paired, unpaired or "
                              "paired_folders) to train the classifier on")
        self.network: nn.Module | None = None
        self.info: dict[str, Any] = {}

    def build(self, device: torch.device) -> nn.Module:
        """The classifier of the targets: the evaluator's (same data and settings: the same cache
        file), outside any autocast so that it is the same network whatever the run's precision."""
        from hydra.utils import instantiate

        from genrun.metrics.classifier import ClassifierFeatures

        data = instantiate(dict(self.data), _convert_="all")
        space = ClassifierFeatures()
        kind = device.type if device.type in ("cpu", "cuda") else "cpu"
        with torch.autocast(kind, enabled=False):
            space.prepare(data, (-1.0, 1.0), device)
        self.info = {"accuracy": space.info.get("accuracy"), "weights_sha256": space.info.get("weights_sha256")}
        net = space.net.eval().requires_grad_(False)
        cut = CLASSIFIER_LAYERS[self.layer]
        return net.body[:cut] if cut is not None else net.body

    def features(self, x: Tensor) -> Tensor:
        if self.network is None:
            self.network = self.build(x.device)
        return self.network(x)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.info}


class VGGContent(Content):
    """phi: VGG-19's feature maps from a local weight file (never downloaded)."""

    name = "vgg19"
    default_weight = 1 / 12.75**2  # Ledig et al. 2017, sec. 2.2.1: VGG losses rescaled by 1/12.75

    def __init__(self, weight: NonNegative | None = None, layer: str | None = "2_2", data: Mapping | None = None,
                 weights: str | None = None) -> None:
        super().__init__(weight, layer or "2_2", data, weights)
        if self.layer not in VGG_LAYERS:
            raise GenrunError(f"model.content_loss.layer={self.layer!r} (model.content=vgg19): valid: {', '.join(VGG_LAYERS)}")
        self.path = _weights_file(weights)
        self.network: nn.Module | None = None

    def build(self, device: torch.device) -> nn.Module:
        """torchvision's VGG-19 feature layers up to the chosen one (only those are built and loaded)."""
        from torchvision.models.vgg import cfgs, make_layers

        cut, config, count = VGG_LAYERS[self.layer], [], 0
        for entry in cfgs["E"]:  # a number: a convolution and its ReLU; "M": a max-pooling
            if count >= cut:
                break
            config.append(entry)
            count += 1 if entry == "M" else 2
        layers = make_layers(config)
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        own = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        try:
            layers.load_state_dict({k: v for k, v in own.items() if int(k.split(".")[0]) < len(layers)})
        except RuntimeError as exc:
            raise GenrunError(f"model.content_loss.weights={self.path}: not VGG-19 weights ({str(exc).splitlines()[0]})") from exc
        return layers.to(device).eval().requires_grad_(False)

    def features(self, x: Tensor) -> Tensor:
        if self.network is None:
            self.network = self.build(x.device)
        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return self.network(((rgb + 1) / 2 - mean) / std)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": str(self.path)}


def _weights_file(weights: str | None) -> Path:
    """`weights`, else torchvision's cache file; a missing file is one line saying where to put it."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise GenrunError(f"model.content_loss.weights={weights}: no such file (VGG-19 weights, e.g. torchvision's "
                              f"{VGG19_FILE}); offline alternatives: model.content=pixel or classifier")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    if not path.is_file():
        raise GenrunError(f"model.content=vgg19 needs VGG-19 weights: model.content_loss.weights=PATH, or torchvision's "
                          f"file at {path} (genrun never downloads); offline alternatives: model.content=pixel or "
                          "classifier")
    return path


# lower-case names for `model.content` (the `_target_` genrun.losses.content.${model.content})
pixel = Content
classifier = ClassifierContent
vgg19 = VGGContent

