"""genrun-sample's latent-space tools (mode=..., genrun.latent): each writes its grid and its tensors,
the interpolation and arithmetic hold in closed form, and a mode a family cannot do is one line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from genrun.errors import GenrunError
from genrun.latent import lerp, slerp
from genrun.sample import sample_command
from genrun.saved_runs import load_run
from genrun.train import run
from tests.conftest import compose_config, run_cli

BASE = ["trainer=debug", "eval=debug", "trainer.batch_size=8", "metrics=[]"]
NETS = {"vae": ["model.encoder.width=8", "model.decoder.width=8", "model.z_dim=4"],
        "infogan": ["model.generator.width=8", "model.discriminator.width=8", "model.features=16", "model.z_dim=4",
                    "model.categorical=3"],
        "dcgan": ["model.generator.width=8", "model.discriminator.width=8", "model.z_dim=6"],
        "gan": ["model.generator.width=32", "model.generator.depth=1", "model.discriminator.width=8", "model.z_dim=3"],
        "independence": ["dataset.sources=2", "model.encoder.width=8", "model.decoder.width=8",
                         "model.discriminator.width=8"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folders = {}
    for model, nets in NETS.items():
        folders[model] = tmp_path_factory.mktemp(model)
        run(compose_config(f"model={model}", *BASE, *nets), folders[model])
    return folders


def written(path: Path) -> tuple[tuple[int, int], dict]:
    """The PNG's size and the tensors saved beside it."""
    size = Image.open(path).size
    return size, torch.load(path.with_suffix(".pt"), weights_only=True)


def test_slerp_and_lerp_in_closed_form():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    t = torch.tensor([0.0, 0.5, 1.0])
    path = slerp(a, b, t)[0]
    assert torch.allclose(path[0], a[0]) and torch.allclose(path[2], b[0])
    assert torch.allclose(path[1], torch.tensor([1.0, 1.0]) / math.sqrt(2))  # on the circle, not the chord
    assert torch.allclose(lerp(a, b, t)[0, 1], torch.tensor([0.5, 0.5]))
    assert torch.allclose(slerp(a, 2 * a, t)[0, 1], 1.5 * a[0])  # parallel: linear


def test_interpolate_walks_from_one_draw_to_the_next(runs):
    out = runs["dcgan"] / "interp.png"
    sample_command(str(runs["dcgan"]), mode="interpolate", n=3, steps=5, out=str(out))
    (width, height), saved = written(out)
    assert saved["images"].shape == (15, 1, 16, 16) and width > height
    pipeline, _ = load_run(runs["dcgan"])
    ends = pipeline.sample_noise(6, torch.Generator().manual_seed(0))  # seed 0: the command's default
    assert torch.allclose(saved["start"]["z"], ends["z"][0::2]) and torch.allclose(saved["end"]["z"], ends["z"][1::2])
    first = pipeline.generate({"z": ends["z"][:1]})
    assert torch.allclose(saved["images"][0], first[0], atol=1e-6)


def test_interpolate_between_encoded_examples_and_spherically(runs):
    out = runs["vae"] / "interp.pt"
    sample_command(str(runs["vae"]), mode="interpolate", examples=[0, 5], steps=4, path="slerp", out=str(out))
    saved = torch.load(out, weights_only=True)
    assert saved["images"].shape == (4, 1, 16, 16) and saved["path"] == "slerp"
    pipeline, checkpoint = load_run(runs["vae"])
    from genrun.latent import held_out_reader

    batch = held_out_reader(checkpoint)(6)
    codes = pipeline.latent_of({"x": batch["x"][[0, 5]]})["z"]
    assert torch.allclose(saved["start"]["z"][0], codes[0]) and torch.allclose(saved["end"]["z"][0], codes[1])


def test_arithmetic_is_the_mean_of_a_minus_b_plus_c(runs):
    out = runs["dcgan"] / "arith.png"
    sample_command(str(runs["dcgan"]), mode="arithmetic", a=["0", "1"], b=["2"], c=["3", "4", "5"], out=str(out))
    _, saved = written(out)
    z = load_run(runs["dcgan"])[0].sample_noise(6, torch.Generator().manual_seed(0))["z"]
    expected = z[:2].mean(0) - z[2] + z[3:6].mean(0)
    assert torch.allclose(saved["result"]["z"][0], expected, atol=1e-6)
    assert saved["images"].shape == (4 * 8, 1, 16, 16)  # rows a, b, c (padded) and the result with 7 variations
    class_out = runs["vae"] / "arith_classes.png"
    sample_command(str(runs["vae"]), mode="arithmetic", a=["class1"], b=["class2"], c=["0"], **{"from": "examples"},
                   out=str(class_out))
    assert written(class_out)[1]["members"]["a"] == ["class1"]


def test_traverse_sweeps_infogan_codes_as_in_the_paper(runs):
    out = runs["infogan"] / "trav.png"
    sample_command(str(runs["infogan"]), mode="traverse", steps=5, out=str(out))
    _, saved = written(out)
    # a row of the 3 categorical values, then each of the 2 continuous codes swept at each value
    assert len(saved["rows"]) == 1 + 2 * 3 and saved["images"].shape[0] == 7 * 5
    assert torch.allclose(saved["values"], torch.linspace(-2, 2, 5))
    sample_command(str(runs["dcgan"]), mode="traverse", steps=4, dims=[0, 5], out=str(out))
    assert written(out)[1]["rows"] == ["z[0]", "z[5]"]


def test_reconstruct_and_classes_write_their_rows(runs):
    out = runs["vae"] / "recon.png"
    sample_command(str(runs["vae"]), mode="reconstruct", n=10, out=str(out))
    _, saved = written(out)
    assert saved["inputs"].shape == saved["reconstructions"].shape == (10, 1, 16, 16)
    assert saved["images"].shape[0] == 2 * 16  # two rows of 8 (inputs above), the second padded
    out = runs["infogan"] / "classes.png"
    sample_command(str(runs["infogan"]), mode="classes", n=4, out=str(out))
    _, saved = written(out)
    assert saved["images"].shape[0] == 3 * 4 and saved["code"].tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_project_finds_the_inputs_of_a_generated_image(runs):
    pipeline, _ = load_run(runs["gan"])
    target = pipeline.generate(pipeline.sample_noise(2, torch.Generator().manual_seed(7)))
    from genrun.latent import Tools, project

    tools = Tools(pipeline, "gan", torch.Generator().manual_seed(0), lambda n: {})
    before = (pipeline.generate(pipeline.sample_noise(2, torch.Generator().manual_seed(0))) - target).pow(2).mean()
    result = project(tools, target, iterations=100, restarts=2)
    assert result.tensors["mse"].shape == (2,) and float(result.tensors["mse"].max()) < 0.5 * float(before)
    assert result.images.shape == (4, 1, 16, 16)  # targets above projections
    assert all(p.requires_grad for p in pipeline.nets["generator"].parameters())  # the weights' flags restored


CANNOT = [
    ("dcgan", "reconstruct", {}, r"mode=reconstruct: model=\w+ cannot reconstruct data \(families with an encoder"),
    ("vae", "classes", {}, r"mode=classes: model=\w+ draws no class-conditioned samples"),
    ("dcgan", "interpolate", {"from": "examples"}, r"has no encoder to map examples to its inputs"),
    ("independence", "project", {}, r"mode=project: model=\w+ has no generator of data from latent inputs"),
    ("independence", "grid", {}, r"mode=grid: model=\w+ draws no samples"),
    ("vae", "traverse", {"dims": [9]}, r"dims=9: the noise z has 4 dimensions"),
    ("vae", "interpolate", {"dims": [1]}, r"dims=\[1\]: mode=interpolate takes no dims"),
    ("vae", "arithmetic", {}, r"mode=arithmetic needs a=..., b=... and c=..."),
    ("vae", "spin", {}, r"mode=spin: valid: grid, interpolate"),
]


@pytest.mark.parametrize("model,mode,options,message", CANNOT, ids=[f"{c[0]}-{c[1]}" for c in CANNOT])
def test_a_mode_the_family_cannot_do_is_one_line(runs, model, mode, options, message):
    with pytest.raises(GenrunError, match=message):
        sample_command(str(runs[model]), mode=mode, out=str(runs[model] / "x.png"), **options)


def test_the_command_line_says_it_in_one_line(runs, tmp_path):
    proc = run_cli(f"run={runs['independence']}", "mode=project", entry="genrun-sample", cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in output
    assert "genrun-sample: error: mode=project: model=IndependencePipeline has no generator" in output
    proc = run_cli(f"run={runs['independence']}", "mode=classes", "a=1,x", entry="genrun-sample", cwd=tmp_path)
    assert proc.returncode == 2 and "a='1,x' is not a valid group" in proc.stderr


def test_a_run_folder_names_its_family_by_the_option_the_user_typed(tmp_path):
    from genrun.latent import family_name

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      model: independence\n")
    assert family_name(tmp_path, {}) == "independence"
    assert family_name(tmp_path / "nowhere", {"config": {"model": {"_target_": "a.b.DANNPipeline"}}}) == "DANNPipeline"
