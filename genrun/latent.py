"""Latent-space tools of genrun-sample (`mode=`): what a trained generator's inputs do.

Every family's inputs are its `sample_noise` (a dict of tensors); the tools move the continuous
ones, CONTINUOUS (the noise `z`, InfoGAN's continuous codes `cont`), set the categorical ones,
CATEGORICAL (a cGAN's or CVAE's `class`, InfoGAN's categorical `code`), and keep any other (e.g. the
discrete GAN's pixel uniforms) as drawn. Families with an encoder map data to inputs (`latent_of`),
families with a decoder of codes rebuild data (`reconstruct`). Each mode returns the picture's
images row by row with its width, and the tensors worth keeping (codes, endpoints, errors):
- interpolate: rows from one input to another, linear or spherical (White 2016), between the seed's
  samples (2i, 2i + 1) or between held-out examples (`from=examples`, `examples=i,j,k,l`: pairs);
- arithmetic: Radford et al. 2016 (sec. 6.3.2): mean(a) - mean(b) + mean(c) of the inputs of chosen
  samples (`from=samples`, indices into the seed's grid, mode=grid) or encoded held-out examples
  (`from=examples`; `classK` stands for every example of class K among the first 1,000), and the
  result with 7 variations (uniform noise of +-0.25, as in the paper);
- traverse: one input dimension at a time from -span to span, the rest fixed (a row each); with a
  categorical code, a row of its values and, for each continuous code, a row per value (Chen et al.
  2016's figures);
- reconstruct: held-out examples above their reconstructions;
- classes: one row per class (or categorical code value) over the same noise;
- project: the inputs whose sample is closest (squared error) to held-out examples or an image file,
  by Adam on the continuous inputs from `restarts` starts (Zhu et al. 2016, iGAN's projection).
A mode the family cannot do is one GenrunError line, naming the families that can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genrun.data.bundle import Batch
from genrun.errors import GenrunError

MODES = ("grid", "interpolate", "arithmetic", "traverse", "reconstruct", "classes", "project")
CONTINUOUS = ("z", "cont")  # inputs the tools move
CATEGORICAL = ("class", "code")  # inputs the tools set to a class
ENCODERS = "vae, cvae, aae, bigan"
EXAMPLE_POOL = 1000  # held-out examples `classK` picks from
NOISE_SCALE = 0.25  # arithmetic's variations: uniform noise of +-0.25 on the result (Radford et al. 2016)
PATHS = ("linear", "slerp")


@dataclass
class Picture:
    """A mode's result: images (or 2D points) row by row, the row width, and tensors to keep."""

    images: Tensor
    columns: int
    tensors: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tools:
    """What the modes work with: the family, its name, a seeded generator, held-out data on demand."""

    pipeline: Any
    family: str
    rng: torch.Generator
    held_out: Callable[[int], Batch]  # the first n held-out examples of the run's data, on the CPU

    def cannot(self, mode: str, needs: str) -> GenrunError:
        return GenrunError(f"mode={mode}: model={self.family} {needs}")

    def noise(self, n: int) -> dict[str, Tensor]:
        """n draws of the inputs from the command's seeded generator."""
        return self.pipeline.sample_noise(n, self.rng)

    def probe(self, n: int) -> dict[str, Tensor]:
        """n draws from a generator of their own: what the inputs are, without moving the seeded one."""
        return self.pipeline.sample_noise(n, torch.Generator(self.pipeline.device).manual_seed(0))

    def generate(self, noise: dict[str, Tensor]) -> Tensor:
        return self.pipeline.generate(noise).detach().float().cpu()

    def require_generator(self, mode: str) -> None:
        if not getattr(self.pipeline, "generative", True) or not self.continuous_keys(self.probe(1)):
            raise self.cannot(mode, "has no generator of data from latent inputs (families that have one: gan, "
                              "dcgan, cgan, infogan, vae, cvae, aae, bigan, ssgan, discrete_gan)")

    def continuous_keys(self, noise: dict[str, Tensor]) -> list[str]:
        return [k for k in CONTINUOUS if k in noise]

    def categorical_keys(self, noise: dict[str, Tensor]) -> list[str]:
        return [k for k in CATEGORICAL if k in noise]

    def encode(self, mode: str, batch: Batch) -> dict[str, Tensor]:
        """Generator inputs of held-out examples (an encoder family), on the model's device."""
        latent_of = getattr(self.pipeline, "latent_of", None)
        if not callable(latent_of):
            raise self.cannot(mode, f"has no encoder to map examples to its inputs (families that have one: {ENCODERS}); "
                                    "use from=samples")
        device = self.pipeline.device
        return {k: v.detach() for k, v in latent_of({k: v.to(device) for k, v in batch.items()}).items()}

    def examples(self, indices: list[int]) -> Batch:
        """Held-out examples at `indices` (an error for an index past the split)."""
        batch = self.held_out(max(indices) + 1)
        if max(indices) >= len(batch["x"]):
            raise GenrunError(f"examples: index {max(indices)} is past the held-out split ({len(batch['x'])} examples)")
        return {k: v[indices] for k, v in batch.items()}


def rows_of(noise: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {k: v[index] for k, v in noise.items()}


def blank_like(images: Tensor, n: int) -> Tensor:
    """n empty cells (the lowest value: black) to pad a row of images; 2D points have none."""
    return torch.full((n, *images.shape[1:]), float(images.min()) if images.numel() else -1.0)


def padded_rows(rows: list[Tensor], columns: int) -> Tensor:
    """Rows of images padded to `columns` cells each, concatenated."""
    return torch.cat([torch.cat([r, blank_like(r, columns - len(r))]) if r.dim() == 4 else r for r in rows])


def pairs_in_rows(top: Tensor, bottom: Tensor, columns: int) -> Picture:
    """`columns` images of `top` with the same images of `bottom` in the row below, and so on."""
    if top.dim() != 4:
        return Picture(torch.cat([top, bottom]), len(top))
    columns = min(columns, len(top))
    rows = [part[i:i + columns] for i in range(0, len(top), columns) for part in (top, bottom)]
    return Picture(padded_rows(rows, columns), columns)


# -- interpolate -------------------------------------------------------------------------------
def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation of rows of a and b (White 2016); linear where they are parallel."""
    a2, b2 = a.flatten(1).double(), b.flatten(1).double()
    cos = (a2 * b2).sum(1) / (a2.norm(dim=1) * b2.norm(dim=1)).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1)).view(-1, 1, 1)
    t = t.double().view(1, -1, 1)
    so = torch.sin(omega)
    small = so.abs() < 1e-6
    wa = torch.where(small, 1 - t, torch.sin((1 - t) * omega) / so.where(~small, torch.ones_like(so)))
    wb = torch.where(small, t, torch.sin(t * omega) / so.where(~small, torch.ones_like(so)))
    path = wa * a2.unsqueeze(1) + wb * b2.unsqueeze(1)
    return path.to(a.dtype).reshape(len(a), len(t.flatten()), *a.shape[1:])


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    t = t.to(a.dtype).view(1, -1, *[1] * (a.dim() - 1))
    return (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)


def interpolate(tools: Tools, n: int, steps: int = 10, path: str = "linear", source: str = "samples",
                examples: list[int] | None = None) -> Picture:
    """n rows of `steps` samples from one endpoint's inputs to the other's."""
    if path not in PATHS:
        raise GenrunError(f"path={path!r}: valid: {', '.join(PATHS)}")
    tools.require_generator("interpolate")
    if source == "examples":
        indices = examples if examples else list(range(2 * n))
        if len(indices) % 2:
            raise GenrunError(f"examples={','.join(map(str, indices))}: give pairs (an even number of indices)")
        ends = tools.encode("interpolate", tools.examples(indices))
        drawn = tools.noise(len(indices))
        ends = {**drawn, **ends}
    else:
        ends = tools.noise(2 * n)
    rows = len(next(iter(ends.values()))) // 2
    start, end = rows_of(ends, torch.arange(0, 2 * rows, 2)), rows_of(ends, torch.arange(1, 2 * rows, 2))
    t = torch.linspace(0, 1, steps, device=tools.pipeline.device)
    noise = {}
    for key, value in start.items():
        if key in CONTINUOUS:
            noise[key] = (slerp if path == "slerp" else lerp)(value, end[key], t).flatten(0, 1)
        else:
            noise[key] = value.repeat_interleave(steps, 0)
    return Picture(tools.generate(noise), steps, {"t": t.cpu(), "start": start, "end": end, "path": path})


# -- arithmetic ---------------------------------------------------------------------------------
def group_inputs(tools: Tools, members: list[str], source: str, pool: dict[str, Tensor] | None,
                 held_out: Batch | None) -> tuple[dict[str, Tensor], Tensor]:
    """The inputs of a group's members and their images: samples of the seed, or encoded examples."""
    if source == "samples":
        index = torch.tensor([int(m) for m in members])
        noise = rows_of(pool, index.to(tools.pipeline.device))
        return noise, tools.generate(noise)
    picks: list[int] = []
    for m in members:
        if m.startswith("class"):
            found = torch.nonzero(held_out["y"] == int(m[5:])).flatten().tolist() if "y" in held_out else []
            if not found:
                raise GenrunError(f"{m}: no held-out example of class {m[5:]} among the first {EXAMPLE_POOL}")
            picks += found
        else:
            picks.append(int(m))
    if max(picks) >= len(held_out["x"]):
        raise GenrunError(f"examples: index {max(picks)} is past the held-out split ({len(held_out['x'])} examples)")
    batch = {k: v[picks] for k, v in held_out.items()}
    return tools.encode("arithmetic", batch), batch["x"].float()


def arithmetic(tools: Tools, a: list[str] | None, b: list[str] | None, c: list[str] | None,
               source: str = "samples", columns: int = 8) -> Picture:
    """Rows: a's members, b's, c's, then mean(a) - mean(b) + mean(c) and its variations."""
    if not (a and b and c):
        raise GenrunError("mode=arithmetic needs a=..., b=... and c=... (comma-separated indices: of the seed's "
                          "samples, from=samples, or of held-out examples, from=examples; classK: every example of class K)")
    tools.require_generator("arithmetic")
    pool, held_out = None, None
    if source == "samples":
        numbers = [m for group in (a, b, c) for m in group]
        if any(not m.isdigit() for m in numbers):
            raise GenrunError("from=samples takes indices of the seed's samples; classK needs from=examples")
        pool = tools.noise(max(int(m) for m in numbers) + 1)
    else:
        held_out = tools.held_out(EXAMPLE_POOL)
    groups = [group_inputs(tools, g, source, pool, held_out) for g in (a, b, c)]
    means = [{k: v.mean(0, keepdim=True) for k, v in noise.items() if k in CONTINUOUS} for noise, _ in groups]
    result = {k: means[0][k] - means[1][k] + means[2][k] for k in means[0]}
    base = rows_of(groups[2][0], torch.zeros(columns, dtype=torch.long, device=tools.pipeline.device))
    varied = {k: v.expand(columns, *v.shape[1:]).clone() for k, v in result.items()}
    for v in varied.values():
        jitter = (torch.rand(v[1:].shape, generator=tools.rng, device=v.device) * 2 - 1) * NOISE_SCALE
        v[1:] += jitter.to(v.dtype)
    images = tools.generate({**base, **varied})
    rows = [imgs[:columns] for _, imgs in groups] + [images]
    return Picture(padded_rows(rows, columns), columns, {"a": means[0], "b": means[1], "c": means[2],
                                                          "result": result, "members": {"a": a, "b": b, "c": c}})


# -- traverse -------------------------------------------------------------------------------------
def sweep(base: dict[str, Tensor], key: str, dim: int, values: Tensor) -> dict[str, Tensor]:
    noise = {k: v.expand(len(values), *v.shape[1:]).clone() for k, v in base.items()}
    noise[key][:, dim] = values.to(noise[key].dtype)
    return noise


def traverse(tools: Tools, steps: int = 10, span: float = 2.0, dims: list[int] | None = None) -> Picture:
    """A row per traversed input dimension (-span to span); with a categorical code, its values in a row
    and each continuous code swept once per value (Chen et al. 2016, fig. 2)."""
    tools.require_generator("traverse")
    base = tools.noise(1)
    values = torch.linspace(-span, span, steps, device=tools.pipeline.device)
    categorical = tools.categorical_keys(base)
    z_dims = base["z"].shape[1] if "z" in base else 0
    dims = dims if dims is not None else ([] if "cont" in base else list(range(min(8, z_dims))))
    if any(not 0 <= d < z_dims for d in dims):
        raise GenrunError(f"dims={','.join(map(str, dims))}: the noise z has {z_dims} dimensions (0 to {z_dims - 1})")
    parts, labels = [], []
    for key in categorical:
        k = categorical_size(tools, key)
        cells = {**{n: v.expand(k, *v.shape[1:]) for n, v in base.items()}, key: torch.arange(k, device=values.device)}
        parts.append(cells)
        labels.append(f"{key}: 0..{k - 1}")
        for j in range(base["cont"].shape[1] if "cont" in base else 0):
            for c in range(k):
                parts.append(sweep({**base, key: torch.full_like(base[key], c)}, "cont", j, values))
                labels.append(f"cont[{j}] at {key}={c}")
    for d in dims:
        parts.append(sweep(base, "z", d, values))
        labels.append(f"z[{d}]")
    if not parts:
        raise tools.cannot("traverse", "has no latent dimension to traverse")
    columns = max(len(next(iter(p.values()))) for p in parts)
    rows = [tools.generate(p) for p in parts]
    return Picture(padded_rows(rows, columns), columns, {"rows": labels, "values": values.cpu(), "base": base})


def categorical_size(tools: Tools, key: str) -> int:
    """How many values a categorical input takes (num_classes, or InfoGAN's k)."""
    for name in ("num_classes", "k"):
        if isinstance(getattr(tools.pipeline, name, None), int):
            return getattr(tools.pipeline, name)
    return int(tools.probe(256)[key].max()) + 1


# -- reconstruct, classes -----------------------------------------------------------------------
def reconstruct(tools: Tools, n: int, examples: list[int] | None = None, columns: int = 8) -> Picture:
    """Held-out examples, `columns` to a row, each row above their reconstructions."""
    if not callable(getattr(tools.pipeline, "reconstruct", None)):
        raise tools.cannot("reconstruct", f"cannot reconstruct data (families with an encoder: {ENCODERS})")
    batch = tools.examples(examples) if examples else tools.held_out(n)
    device = tools.pipeline.device
    recon = tools.pipeline.reconstruct({k: v.to(device) for k, v in batch.items()}).detach().float().cpu()
    picture = pairs_in_rows(batch["x"].float(), recon, columns)
    picture.tensors = {"inputs": batch["x"].float(), "reconstructions": recon}
    return picture


def classes(tools: Tools, n: int) -> Picture:
    """One row per class value over the same n noise draws (2D data: points coloured by class)."""
    from genrun.engine.images import labelled_points

    drawn = tools.noise(n)
    keys = tools.categorical_keys(drawn)
    if not keys:
        raise tools.cannot("classes", "draws no class-conditioned samples (families that do: cgan, cvae, infogan)")
    key = keys[0]
    k = categorical_size(tools, key)
    rows = torch.arange(k, device=tools.pipeline.device).repeat_interleave(n)
    noise = {name: v.repeat(k, *[1] * (v.dim() - 1)) for name, v in drawn.items()}
    noise[key] = rows
    images = tools.generate(noise)
    if images.dim() == 2:
        images = labelled_points(images, rows.cpu())
    return Picture(images, n, {key: rows.cpu(), "noise": drawn})


# -- project ------------------------------------------------------------------------------------
def read_image(path: str, shape: tuple[int, ...], value_range: tuple[float, float]) -> Tensor:
    """An image file as one example of the run's shape [1, C, H, W] in its value range."""
    from PIL import Image

    file = Path(path).expanduser()
    if not file.is_file():
        raise GenrunError(f"image={path}: no such file")
    if len(shape) != 3:
        raise GenrunError(f"image={path}: the run's data are not images (shape {list(shape)})")
    with Image.open(file) as im:
        im = im.convert("L" if shape[0] == 1 else "RGB").resize((shape[2], shape[1]), Image.BILINEAR)
        x = torch.tensor(list(im.getdata()), dtype=torch.float32).view(shape[1], shape[2], -1).permute(2, 0, 1)
    low, high = value_range
    return (low + (high - low) * x / 255.0).unsqueeze(0)


def project(tools: Tools, targets: Tensor, iterations: int = 300, restarts: int = 4, lr: float = 0.05,
            columns: int = 8) -> Picture:
    """The continuous inputs whose samples are closest to `targets` (squared error per value), the best of
    `restarts` Adam runs from the seed's draws; other inputs as drawn."""
    tools.require_generator("project")
    device = tools.pipeline.device
    y = targets.to(device).float()
    best_noise, best_err = None, torch.full((len(y),), float("inf"))
    for _ in range(restarts):
        noise = tools.noise(len(y))
        moving = {k: noise[k].clone().requires_grad_(True) for k in tools.continuous_keys(noise)}
        opt = torch.optim.Adam(list(moving.values()), lr=lr)
        with tools.pipeline.differentiable():
            for _ in range(iterations):
                err = (tools.pipeline.generate({**noise, **moving}).float() - y).pow(2).flatten(1).mean(1)
                if not err.requires_grad:
                    raise tools.cannot("project", "has a generator whose samples do not depend smoothly on its "
                                                  "inputs (discrete draws): nothing to optimise")
                opt.zero_grad()
                err.sum().backward()
                opt.step()
        with torch.no_grad():
            final = {**noise, **{k: v.detach() for k, v in moving.items()}}
            err = (tools.pipeline.generate(final).float() - y).pow(2).flatten(1).mean(1).cpu()
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_noise = final if best_noise is None else {
            k: torch.where(better.to(device).view(-1, *[1] * (v.dim() - 1)), final[k], v) for k, v in best_noise.items()}
    picture = pairs_in_rows(targets.float().cpu(), tools.generate(best_noise), columns)
    picture.tensors = {"noise": {k: v.cpu() for k, v in best_noise.items()}, "mse": best_err}
    return picture


# -- genrun-sample's entry points ---------------------------------------------------------------
DEFAULT_N = {"grid": 64, "interpolate": 8, "reconstruct": 32, "classes": 10, "project": 8, "arithmetic": 8}
SOURCES = ("samples", "examples")


def check_options(mode: str, n: int | None, options: dict[str, Any]) -> int:
    """Bad choices fail before the run is loaded; returns n (the mode's default when not given)."""
    if mode not in MODES:
        raise GenrunError(f"mode={mode}: valid: {', '.join(MODES)}")
    if n is not None and n < 1:
        raise GenrunError(f"n={n}: must be >= 1")
    for key in ("steps", "iterations", "restarts"):
        if key in options and options[key] < 1:
            raise GenrunError(f"{key}={options[key]}: must be >= 1")
    if options.get("from", "samples") not in SOURCES:
        raise GenrunError(f"from={options['from']}: valid: {', '.join(SOURCES)}")
    if options.get("path", "linear") not in PATHS:
        raise GenrunError(f"path={options['path']}: valid: {', '.join(PATHS)}")
    if "span" in options and not options["span"] > 0:
        raise GenrunError(f"span={options['span']}: must be > 0")
    used = {"interpolate": {"steps", "path", "from", "examples"}, "arithmetic": {"a", "b", "c", "from", "steps"},
            "traverse": {"steps", "span", "dims"}, "reconstruct": {"examples"}, "classes": set(), "grid": set(),
            "project": {"examples", "image", "iterations", "restarts"}}[mode]
    stray = sorted(set(options) - used - {"mode"})
    if stray:
        valid = ", ".join(sorted(used)) or "none beyond n, out, seed, device, ema"
        raise GenrunError(f"{'='.join([stray[0], str(options[stray[0]])])}: mode={mode} takes no {stray[0]} "
                          f"(its options: {valid})")
    return n if n is not None else DEFAULT_N.get(mode, 8)


def family_name(run: str | Path, checkpoint: dict) -> str:
    """The `model=` option a run was trained with (its Hydra choices), else its family's class name."""
    from genrun.paths import run_folder_of
    from genrun.runs import group_choices

    try:
        choice = group_choices(run_folder_of(run)).get("model")
    except (OSError, GenrunError):
        choice = None
    return str(choice or checkpoint.get("config", {}).get("model", {}).get("_target_", "?").rsplit(".", 1)[-1])


def grid_samples(pipeline: Any, checkpoint: dict, run: str | Path, n: int, rng: torch.Generator) -> Tensor:
    """n samples (mode=grid); a family that draws none says so in one line."""
    try:
        return pipeline.sample(n, rng).cpu()
    except NotImplementedError as exc:
        raise GenrunError(f"mode=grid: model={family_name(run, checkpoint)} draws no samples (it has no "
                          "generator)") from exc


def held_out_reader(checkpoint: dict) -> Callable[[int], Batch]:
    """The first n examples of the run's held-out split, its data built once on first use."""
    from omegaconf import OmegaConf

    from genrun.build import build_data

    cache: dict[str, Any] = {}

    def read(n: int) -> Batch:
        if "data" not in cache:
            cache["data"] = build_data(OmegaConf.create(checkpoint["config_raw"]))
        data = cache["data"]
        split = "test" if data.has("test") else "train"
        return data.examples(n, split)

    return read


def run_mode(mode: str, tools: Tools, n: int, options: dict[str, Any], checkpoint: dict) -> Picture:
    """The picture of one latent mode."""
    source, examples = options.get("from", "samples"), options.get("examples")
    if mode == "interpolate":
        return interpolate(tools, n, options.get("steps", 10), options.get("path", "linear"),
                           "examples" if examples else source, examples)
    if mode == "arithmetic":
        return arithmetic(tools, options.get("a"), options.get("b"), options.get("c"), source,
                          options.get("steps", n))
    if mode == "traverse":
        return traverse(tools, options.get("steps", 10), options.get("span", 2.0), options.get("dims"))
    if mode == "reconstruct":
        return reconstruct(tools, n, examples)
    if mode == "classes":
        return classes(tools, n)
    if "image" in options:
        config = checkpoint["config"]["dataset"]
        targets = read_image(options["image"], tuple(config["shape"]), tuple(config.get("range") or (-1.0, 1.0)))
    else:
        tools.require_generator("project")
        targets = (tools.examples(examples) if examples else tools.held_out(n))["x"]
    return project(tools, targets, options.get("iterations", 300), options.get("restarts", 4))


def write_mode(mode: str, pipeline: Any, checkpoint: dict, run: str | Path, rng: torch.Generator, n: int,
               options: dict[str, Any], target: Path) -> None:
    """Run a latent mode and write its picture (.png, its tensors in <stem>.pt beside it), or its images
    and tensors (.pt), or its images alone (.npy)."""
    import numpy as np

    from genrun.engine.images import image_grid, picture, save_png

    tools = Tools(pipeline, family_name(run, checkpoint), rng, held_out_reader(checkpoint))
    result = run_mode(mode, tools, n, options, checkpoint)
    images = result.images
    if target.suffix == ".npy":
        np.save(target, images.numpy())
    elif target.suffix == ".pt":
        torch.save({"images": images, **result.tensors}, target)
    else:
        save_png(image_grid(images, columns=result.columns) if images.dim() == 4 else picture(images), target)
        if result.tensors:
            torch.save({"images": images, **result.tensors}, target.with_suffix(".pt"))
