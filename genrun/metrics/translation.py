"""Metrics of translation models (genrun.pipelines.translation) on held-out inputs.

- `paired` (psnr, ssim, l1, psnr_hole): outputs against their targets where pairs exist, with
  the super-resolution convention of genrun.metrics.pixels (8-bit images in [0, 1], luma of
  colour images, the scale factor cropped at the border); `psnr_hole` over the hole only
  (task=masked). Its floor is the task's baseline: the input itself, bicubic up-sampled for
  super-resolution and repeated to the target's channels for colourisation.
- `label_preservation` (label_accuracy, label_accuracy_back): genrun's classifier of the target
  domain on the translations, against the labels of the inputs they came from (the offline
  stand-in for pix2pix's FCN score); CycleGAN's other direction with a classifier of the input
  domain. Its floor: each classifier on held-out real images of its domain.
- `cycle` (cycle_l1, cycle_l1_back): CycleGAN's mean |F(G(a)) - a| and |G(F(b)) - b|.
The distribution of the outputs is measured by the evaluator's own fid, kid, ...: a translation
family's samples are its outputs on held-out inputs (genrun.evaluation.draw_samples).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from genrun.data.bundle import Batch
from genrun.data.tasks import upsample, with_channels
from genrun.metrics.base import EvalContext, Metric, in_chunks
from genrun.metrics.heldout import HeldOutMetric
from genrun.metrics.pixels import crop, psnr, ssim, ssim_window, to_unit, y_channel
from genrun.ranges import Positive, PositiveInt

TRANSLATES = "translation of inputs (a translation family: model=pix2pix, cyclegan, srgan, context_encoder)"


def translation_data_missing(ctx: EvalContext) -> str | None:
    """Why the data cannot be translated: it has no inputs."""
    if getattr(ctx.data, "inputs", None) is None:
        return "the dataset has no inputs (a translation dataset: dataset=paired, unpaired or paired_folders)"
    return None


def baseline(inputs: Tensor, like: Tensor, value_range: tuple[float, float]) -> Tensor:
    """The task's trivial translation: the input, bicubic up-sampled to the target's size and given
    its channels (grey repeated, colour reduced to luma), in the data's value range."""
    low, high = value_range
    unit = (inputs.double() - low) / (high - low)
    unit = with_channels(upsample(unit, like.shape[-1]), like.shape[1])
    return low + (high - low) * unit


class PairedFidelity(HeldOutMetric):
    """`psnr`, `ssim`, `l1` (and `psnr_hole`) of the outputs for n held-out inputs against their targets."""

    name = "paired"
    better = {"psnr": "higher", "ssim": "higher", "l1": "lower", "psnr_hole": "higher"}
    floor_label = "task baseline (the input; bicubic for lowres)"
    reads, lacks = "translate", TRANSLATES

    def __init__(self, n: PositiveInt = 2000, quantize: bool = True, luma: bool = True, window: PositiveInt = 11,
                 sigma: Positive = 1.5) -> None:
        super().__init__(n)
        self.quantize, self.luma, self.window, self.sigma = quantize, luma, window, sigma
        self.used: dict[str, Any] = {}

    def missing(self, ctx: EvalContext) -> str | None:
        reason = super().missing(ctx) or translation_data_missing(ctx)
        if reason is None and not ctx.data.inputs.aligned:
            return "the dataset has no pairs (dataset=unpaired): nothing to compare the outputs with"
        return reason

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        batch = self.held_out(ctx)
        outputs = self.per_example(ctx, ctx.pipeline.translate, batch)
        describe = getattr(ctx.pipeline, "translation_protocol", None)
        self.used["training"] = describe() if callable(describe) else None
        return self.scores(outputs, batch, ctx)

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        if translation_data_missing(ctx) or not ctx.data.inputs.aligned or not ctx.data.has(ctx.held_out):
            return None
        batch = ctx.data.examples(self.n, ctx.held_out)
        return self.scores(baseline(batch["input"], batch["x"], ctx.value_range), batch, ctx)

    def scores(self, outputs: Tensor, batch: Batch, ctx: EvalContext) -> dict[str, float]:
        """The four numbers, averaged over images (PSNR per image first, as the SR literature does)."""
        value_range = ctx.value_range or (-1.0, 1.0)
        border = int(getattr(ctx.data.inputs, "border", 0))
        out, target = (crop(to_unit(t, value_range, self.quantize), border) for t in (outputs, batch["x"]))
        l1 = (out - target).abs().flatten(1).mean(1)
        if self.luma:
            out, target = y_channel(out), y_channel(target)
        window = ssim_window(out.shape[-2], out.shape[-1], self.window)
        self.used.update({"border": border, "ssim_window": window,
                          "channel": "Y (BT.601)" if batch["x"].shape[1] == 3 and self.luma else "all channels"})
        values = {"psnr": float(psnr(out, target).mean()),
                  "ssim": float(ssim(out, target, window=window, sigma=self.sigma).mean()),
                  "l1": float(l1.mean())}
        if "mask" in batch:
            hole = crop(batch["mask"], border)
            values["psnr_hole"] = float(psnr(out, target, mask=hole).mean())
        return values

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "data_range": "images in [0, 1], range 1", "quantized_8bit": self.quantize,
                "ssim": f"Wang et al. 2004, Gaussian {self.window}x{self.window}, sigma {self.sigma}, K1 0.01, "
                        "K2 0.03, valid region (genrun.metrics.pixels; torchmetrics' map over that region to 1e-5)",
                **self.used}


class LabelPreservation(HeldOutMetric):
    """`label_accuracy`: genrun's classifier of the target domain on the outputs for held-out inputs
    (the evaluator's samples), against those inputs' labels; `label_accuracy_back` the same for a
    family that also maps back (CycleGAN), with a classifier of the input domain."""

    name = "label_preservation"
    better = {"label_accuracy": "higher", "label_accuracy_back": "higher"}
    needs = ("logits", "model")
    floor_label = "classifier on held-out real images"
    reads, lacks = "translate", TRANSLATES

    def __init__(self, n: PositiveInt = 2000) -> None:
        super().__init__(n)
        self._input_space: tuple[int, Any] | None = None  # (id of the data, the input domain's classifier)

    def missing(self, ctx: EvalContext) -> str | None:
        reason = Metric.missing(self, ctx) or super().missing(ctx) or translation_data_missing(ctx)
        if reason is None and ctx.space.name != "classifier":
            return (f"it needs genrun's classifier of the dataset's classes (features=auto or classifier), not "
                    f"{ctx.space.name}")
        if reason is None and not ctx.data.inputs.labelled:
            return "it needs class labels of the inputs"
        return reason

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        labels = ctx.data.examples(len(ctx.fake), ctx.held_out)["input_y"]
        self.split, self.examples = ctx.held_out, len(labels)
        values = {"label_accuracy": accuracy(ctx.fake_logits, labels)}
        if callable(getattr(ctx.pipeline, "translate_back", None)):
            batch = self.held_out(ctx)
            back = self.per_example(ctx, ctx.pipeline.translate_back, batch)
            values["label_accuracy_back"] = accuracy(in_chunks(self.input_space(ctx).logits, back), batch["y"])
        return values

    def floor(self, ctx: EvalContext) -> dict[str, float] | None:
        if (translation_data_missing(ctx) or ctx.space is None or ctx.space.name != "classifier"
                or not ctx.data.inputs.labelled or not ctx.data.has(ctx.held_out)):
            return None
        batch = ctx.data.examples(self.n, ctx.held_out)
        values = {"label_accuracy": accuracy(in_chunks(ctx.space.logits, batch["x"]), batch["y"])}
        if not ctx.data.inputs.aligned:  # two domains: the input domain's classifier on its own held-out images
            logits = in_chunks(self.input_space(ctx).logits, batch["input"])
            values["label_accuracy_back"] = accuracy(logits, batch["input_y"])
        return values

    def input_space(self, ctx: EvalContext) -> Any:
        """genrun's classifier of the input domain (trained once per dataset, cached like the evaluator's)."""
        if self._input_space is None or self._input_space[0] != id(ctx.data):
            space = type(ctx.space)(ctx.space.settings)
            space.prepare(ctx.data.inputs.domain(), ctx.value_range, ctx.device)
            self._input_space = (id(ctx.data), space)
        return self._input_space[1]

    def protocol(self) -> dict[str, Any]:
        info = self._input_space[1].protocol() if self._input_space is not None else None
        return {**super().protocol(), "input_domain_classifier": info}


def accuracy(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(1).cpu() == labels.cpu()).float().mean())


class CycleConsistency(HeldOutMetric):
    """`cycle_l1`: mean |F(G(a)) - a| over held-out inputs, `cycle_l1_back`: mean |G(F(b)) - b| over
    held-out targets, in data units (CycleGAN's cycle reconstruction error)."""

    name = "cycle"
    better = {"cycle_l1": "lower", "cycle_l1_back": "lower"}
    reads, lacks = "cycle_errors", "maps in both directions (model=cyclegan)"

    def missing(self, ctx: EvalContext) -> str | None:
        return super().missing(ctx) or translation_data_missing(ctx)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        errors = self.per_example(ctx, ctx.pipeline.cycle_errors, self.held_out(ctx))
        return {"cycle_l1": float(errors[:, 0].mean()), "cycle_l1_back": float(errors[:, 1].mean())}

