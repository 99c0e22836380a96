"""Image-to-image translation: the tasks built from an image set, the networks of the papers, the
four families (pix2pix, CycleGAN, SRGAN/SRResNet, context encoder) in the phase engine, their
metrics in the one evaluator, genrun-sample input=, and bad input as one line before training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from genrun.build import build_data, build_pipeline
from genrun.data.bundle import Batches, DataBundle, hold_out_validation
from genrun.data.pairs import Inputs
from genrun.data.tasks import downsample, luma, to_pixels, unit
from genrun.engine.checkpoint import load_checkpoint
from genrun.engine.updates import Updater
from genrun.errors import GenrunError
from genrun.losses.translation import cycle_consistency, l1, overlap_weights, weighted_l2
from genrun.metrics.pixels import psnr, ssim, y_channel
from genrun.nets.context import ChannelwiseFC
from genrun.nets.patchgan import PatchGAN, receptive_field
from genrun.nets.pool import ImagePool
from genrun.nets.resnet import SRResNet
from genrun.nets.unet import UNet
from genrun.train import run
from tests.conftest import compose_config
from tests.test_training import assert_bitwise_equal

DIGITS = ["dataset.source=digits", "dataset.image_size=16"]
SMALL = ["dataset.source=digits", "dataset.image_size=8"]  # the digits' own size: the classifiers train fast
# each family on a task of scikit-learn's digits at 8 px, with networks of width 8
FAMILIES = {
    "pix2pix": ["dataset=paired", *SMALL, "dataset.task=edges"],
    # digits to digits: both domains are the paired tasks' targets, so one classifier serves every test
    "cyclegan": ["dataset=unpaired", *SMALL, "dataset.target=digits", "model.generator.blocks=1"],
    "srgan": ["dataset=paired", *SMALL, "dataset.task=lowres", "dataset.scale=2", "model.generator.blocks=1",
              "model.discriminator.dense=16", "model.pretrain_steps=2"],
    "context_encoder": ["dataset=paired", *SMALL, "dataset.task=masked", "dataset.mask=blocks", "dataset.mask_size=3"],
}
FAMILIES["srresnet"] = FAMILIES["srgan"][:-1]


def tiny(model: str, *extra: str) -> list[str]:
    return [f"model={model}", *FAMILIES[model], "trainer=debug", "eval=debug", "trainer.batch_size=8",
            "model.generator.width=8", "model.discriminator.width=8", *extra]


@pytest.fixture(scope="module")
def digits_tasks() -> dict[str, DataBundle]:
    tasks = ("edges", "lowres", "masked", "inverted")
    data = {t: build_data(compose_config("dataset=paired", *DIGITS, f"dataset.task={t}")) for t in tasks}
    data["grey2colour"] = build_data(compose_config("dataset=paired", *DIGITS, "dataset.task=grey2colour",
                                                    "dataset.channels=3"))
    return data


# -- closed forms ----------------------------------------------------------------------------
def test_ssim_matches_torchmetrics_to_1e_5():
    """torchmetrics' SSIM map, averaged over the valid region (the SR convention: Wang et al.'s code,
    scikit-image); torchmetrics' own mean also takes the reflection-padded border."""
    tm = pytest.importorskip("torchmetrics.functional.image")
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 1, 28, 28), (2, 3, 32, 32), (2, 1, 16, 20)):
        x = torch.rand(shape, generator=g, dtype=torch.float64)
        y = (x + 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        _, full = tm.structural_similarity_index_measure(y, x, data_range=1.0, reduction="none",
                                                         return_full_image=True)
        theirs = full[..., 5:-5, 5:-5].flatten(1).mean(1)
        assert torch.allclose(ssim(y, x), theirs, atol=1e-5, rtol=0), (ssim(y, x), theirs)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))


def test_psnr_and_the_luma_of_the_super_resolution_convention():
    x = torch.full((2, 1, 8, 8), 0.5, dtype=torch.float64)
    assert torch.allclose(psnr(x + 0.1, x), torch.full((2,), 20.0, dtype=torch.float64))  # MSE 0.01
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., :2, :] = 1
    off = x.clone()
    off[..., :2, :] += 0.01  # only inside the mask: MSE 1e-4 there
    assert torch.allclose(psnr(off, x, mask=mask), torch.full((2,), 40.0, dtype=torch.float64))
    white = torch.ones(1, 3, 2, 2, dtype=torch.float64)
    assert torch.allclose(y_channel(white), torch.full((1, 1, 2, 2), 235 / 255, dtype=torch.float64))
    assert torch.allclose(y_channel(0 * white), torch.full((1, 1, 2, 2), 16 / 255, dtype=torch.float64))


def test_reconstruction_terms_have_their_closed_forms():
    a, b = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    assert float(l1(a + 0.5, a)) == 0.5
    assert float(cycle_consistency(a, a + 0.25, b, b - 0.5)) == 0.75
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 3:5, 3:5] = 1  # a 2x2 hole, a 1 px border: 16 - 4 = 12 border pixels
    w = overlap_weights(mask, overlap=1, overlap_weight=10.0)
    assert float(w.sum()) == 4 * 1 + 12 * 10 and float(w[..., 0, 0]) == 0
    # an error of 1 everywhere: sum w / 16 predicted pixels; 2 outside the region changes nothing
    target = torch.zeros(1, 1, 8, 8)
    output = target + 1 + (w == 0).float()
    assert math.isclose(float(weighted_l2(output, target, w)), 124 / 16)


# -- networks -------------------------------------------------------------------------------
@pytest.mark.parametrize("n_layers", [1, 2])
def test_patchgan_receptive_field_is_what_the_docs_say(n_layers):
    assert [receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]
    critic = PatchGAN(1, 64, width=4, n_layers=n_layers, norm="none")
    x = torch.randn(1, 1, 64, 64, requires_grad=True)
    out = critic(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = x.grad[0, 0].abs().sum(1).nonzero(), x.grad[0, 0].abs().sum(0).nonzero()
    assert int(rows.max() - rows.min()) + 1 == receptive_field(n_layers) == int(cols.max() - cols.min()) + 1


def test_unet_depth_follows_the_image_and_skips_keep_the_size():
    assert UNet(1, 3, 32, width=4).depth == 5 and UNet(1, 1, 28, width=4).depth == 2
    net = UNet(1, 3, 32, width=4, depth=3)
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(GenrunError, match=r"model.generator.depth=5: .* 28 px \(valid depths here: 1 to 2"):
        UNet(1, 1, 28, depth=5)


def test_srresnet_upsamples_by_sub_pixel_layers():
    for scale in (2, 4):
        assert SRResNet(1, 1, scale, width=4, blocks=1)(torch.randn(2, 1, 7, 7)).shape == (2, 1, 7 * scale, 7 * scale)
    with pytest.raises(GenrunError, match="dataset.scale=3"):
        SRResNet(1, 1, 3)


def test_vgg_content_reads_a_local_weight_file_or_says_where_to_put_one(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    from genrun.losses.content import VGGContent

    with pytest.raises(GenrunError, match=r"model.content_loss.weights=.*no such file .*model.content=pixel or classifier"):
        VGGContent(weights=str(tmp_path / "none.pth"))
    torch.manual_seed(0)
    features = make_layers(cfgs["E"][:5])  # conv1_1 .. conv2_2: what layer 2_2 needs
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg.pth")
    content = VGGContent(weights=str(tmp_path / "vgg.pth"))
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert float(content(x, x)) == 0 and float(content(x, -x)) > 0
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = features(((x.expand(-1, 3, -1, -1) + 1) / 2 - mean) / std)
    assert torch.allclose(content.features(x), expected) and content.describe()["network"] == "vgg19"


def test_channelwise_fc_links_locations_within_each_channel_only():
    fc = ChannelwiseFC(3, 4)
    assert sum(p.numel() for p in fc.parameters()) == 3 * 16 * 16 + 3 * 16
    x = torch.randn(2, 3, 4, 4)
    y = x.clone()
    y[:, 0, 1, 2] += 1.0
    changed = (fc(y) - fc(x)).abs().flatten(2).sum(2)
    assert (changed[:, 0] > 0).all() and (changed[:, 1:] == 0).all()


def test_image_pool_keeps_50_then_swaps_half_and_round_trips():
    torch.manual_seed(0)
    pool = ImagePool((1, 2, 2), size=4)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 4
    new = (torch.arange(200.0) + 10).view(200, 1, 1, 1).expand(200, 1, 2, 2)
    served = pool.query(new)
    old = (served != new).flatten(1).all(1).float().mean()
    assert 0.35 < float(old) < 0.65  # about half come from the history
    copy = ImagePool((1, 2, 2), size=4)
    copy.load_state_dict(pool.state_dict())
    assert torch.equal(copy.images, pool.images)


# -- tasks -------------------------------------------------------------------------------------
def test_paired_tasks_are_what_the_docs_say(digits_tasks):
    edges, lowres, masked, inverted = (digits_tasks[t] for t in ("edges", "lowres", "masked", "inverted"))
    target = edges.train
    assert target.dtype == torch.uint8 and all(torch.equal(d.train, target) for d in (lowres, masked, inverted))
    assert set(edges.inputs.images["train"].unique().tolist()) == {0, 255}  # edges, and not only edges
    assert torch.equal(inverted.inputs.images["train"], 255 - target)
    assert lowres.inputs.images["train"].shape[-1] == 4 and lowres.inputs.border == 4
    assert torch.equal(lowres.inputs.images["train"], to_pixels(downsample(unit(target), 4)))
    mask = masked.inputs.masks["train"].bool()
    assert int(mask[0].sum()) == 16 * 16 // 4  # the centre square of side image_size / 2
    assert torch.equal(masked.inputs.images["train"][~mask.expand_as(target)], target[~mask.expand_as(target)])
    hole = masked.inputs.images["train"][mask.expand_as(target)]
    assert int(hole.max() - hole.min()) == 0  # one fill value: the training targets' mean pixel
    colour = digits_tasks["grey2colour"]
    assert colour.train.shape[1] == 3 and colour.inputs.images["train"].shape[1] == 1
    assert (unit(colour.inputs.images["train"]) - luma(unit(colour.train))).abs().max() <= 1 / 255 + 1e-6
    again = build_data(compose_config("dataset=paired", *DIGITS, "dataset.task=masked", "dataset.mask=blocks",
                                      "dataset.mask_size=5"))
    twice = build_data(compose_config("dataset=paired", *DIGITS, "dataset.task=masked", "dataset.mask=blocks",
                                      "dataset.mask_size=5"))
    assert torch.equal(again.inputs.masks["test"], twice.inputs.masks["test"])  # deterministic
    batch = edges.examples(5, "test")
    assert set(batch) == {"x", "y", "input", "input_y"} and torch.equal(batch["y"], batch["input_y"])


def test_unpaired_domains_share_no_image_and_stream_resumably():
    data = build_data(compose_config("dataset=unpaired", *DIGITS, "dataset.target=inverted"))
    a, b = data.inputs.images["train"], data.train
    assert abs(len(a) - len(b)) <= 1 and not data.inputs.aligned
    inverted_a = {bytes(t.numpy()) for t in 255 - a}
    assert not any(bytes(t.numpy()) in inverted_a for t in b)  # no image of A is (inverted) in B
    stream = Batches(data, 64, torch.device("cpu"), seed=0)
    drawn = [stream() for _ in range(14)]  # across an epoch of B (11 batches)
    resumed = Batches(data, 64, torch.device("cpu"), seed=0)
    resumed.load_state_dict({"epoch": 1, "pos": 0})
    assert stream.batches_per_epoch == 11 and torch.equal(resumed()["input"], drawn[11]["input"])
    seen = torch.cat([bt["input"] for bt in drawn[:11]])  # one pass over B's 704 draws: A's rows once each
    assert len(torch.unique(seen.flatten(1), dim=0)) >= 700
    parts = [Batches(data, 64, torch.device("cpu"), seed=0, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat([p()["input"] for p in parts]), drawn[0]["input"])
    held = hold_out_validation(data, 100)
    assert held.examples(3, "validation")["input"].shape == (3, 1, 16, 16)


def write_images(folder: Path, names: list[str], size: int = 8) -> None:
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((torch.arange(size * size).view(size, size) * (i + 1)) % 256).byte().numpy()).save(folder / name)


def test_user_pairs_are_matched_by_name(tmp_path):
    write_images(tmp_path / "in", ["c0/a.png", "c0/b.png", "c1/c.png", "c1/d.png", "c1/lonely.png"])
    write_images(tmp_path / "out", ["c0/a.jpg", "c0/b.png", "c1/c.png", "c1/d.bmp"])
    data = build_data(compose_config("dataset=paired_folders", f"dataset.inputs={tmp_path / 'in'}",
                                     f"dataset.targets={tmp_path / 'out'}", "dataset.image_size=8", "dataset.channels=1",
                                     "dataset.held_out=0.25"))
    assert len(data.train) == 3 and len(data.test) == 1 and data.inputs.aligned
    assert sorted(torch.cat([data.labels, data.test_labels]).tolist()) == [0, 0, 1, 1]


# -- the families ------------------------------------------------------------------------------
CASES = [  # (model, overrides, keys it must report)
    ("pix2pix", [], {"psnr", "ssim", "l1", "label_accuracy", "fid", "kid"}),
    ("cyclegan", [], {"cycle_l1", "cycle_l1_back", "label_accuracy", "label_accuracy_back", "fid"}),
    ("srgan", ["model.content=classifier", "features=none", "trainer.max_steps=4"], {"psnr", "ssim", "l1"}),
    ("context_encoder", ["features=none"], {"psnr", "psnr_hole", "ssim"}),
]


@pytest.mark.trains
@pytest.mark.parametrize("model,extra,keys", CASES, ids=[c[0] for c in CASES])
def test_family_trains_evaluates_and_round_trips(tmp_path, model, extra, keys):
    result = run(compose_config(*tiny(model, "trainer.max_steps=3", *extra)), tmp_path)
    assert keys <= set(result), sorted(result)
    assert all(math.isfinite(result[k]) for k in keys)
    losses = {k: v for k, v in result.items() if k.startswith("loss/")}
    assert losses and all(math.isfinite(v) for v in losses.values())
    if "label_accuracy" in keys:  # its floor: genrun's classifier on real held-out images of the domain
        assert result["floor"]["label_accuracy"] > 0.8 and 0 <= result["label_accuracy"] <= 1
    if "psnr" in keys:  # the task's baseline (the input itself, bicubic for lowres) is the floor
        assert result["protocol"]["floor_of"]["psnr"].startswith("task baseline")
        assert math.isfinite(result["floor"]["psnr"])
    assert (tmp_path / "samples" / "step_3.png").is_file()
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    rebuilt = build_pipeline(OmegaConf.create(ckpt["config_raw"]), torch.device("cpu"))
    rebuilt.load_state_dict(ckpt["pipeline"])
    assert assert_bitwise_equal(rebuilt.state_dict(), ckpt["pipeline"]) > 4


def test_srgan_pretrains_as_srresnet_then_adds_the_critic():
    pipeline = build_pipeline(compose_config(*tiny("srgan", "model.pretrain_steps=3")), torch.device("cpu"))
    due = {step: [p.name for p in pipeline.phases if p.runs_at(step)] for step in (1, 3, 4)}
    assert due == {1: ["SRResNet"], 3: ["SRResNet"], 4: ["D", "G"]}
    srresnet = build_pipeline(compose_config(*tiny("srresnet")), torch.device("cpu"))
    assert [p.name for p in srresnet.phases] == ["G"] and set(srresnet.nets) == {"generator"}


@pytest.mark.trains
@pytest.mark.parametrize("model,extra", [("cyclegan", ["dataset.target=inverted"]), ("srgan", ["model.pretrain_steps=6"])],
                         ids=["cyclegan", "srgan"])
def test_family_resumes_bit_exactly(tmp_path, model, extra):
    # batch 64: an epoch of the unpaired digits is 11 batches; SRGAN switches to its critic at step 7
    common = tiny(model, *extra, "trainer.batch_size=64", "trainer.ckpt_every=100", "trainer.sample_every=100",
                  "trainer.log_every=5", "metrics=[paired]", "features=none")
    straight, half = tmp_path / "straight", tmp_path / "half"
    run(compose_config(*common, "trainer.max_steps=13"), straight)
    run(compose_config(*common, "trainer.max_steps=5"), half)
    checkpoint = load_checkpoint(half / "checkpoints" / "last.pt")
    from genrun.task import resume_config

    run(resume_config(checkpoint["config_raw"], ["trainer.max_steps=13"], str(half)), half, checkpoint)
    a, b = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (straight, half))
    assert a["step"] == b["step"] == 13 and a["data"] == b["data"]
    assert assert_bitwise_equal({k: a[k] for k in ("pipeline", "rng")}, {k: b[k] for k in ("pipeline", "rng")}) > 10
    if model == "cyclegan":
        assert a["data"]["epoch"] == 1 and int(a["pipeline"]["nets"]["pool"]["count"]) == 50


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan", "srgan", "context_encoder"])
def test_every_family_steps_in_bf16(model):
    cfg = compose_config(*tiny(model))
    torch.manual_seed(0)
    pipeline = build_pipeline(cfg, torch.device("cpu"))
    batches = Batches(build_data(cfg), 8, torch.device("cpu"), 0)
    updater = Updater("cpu", "bf16")
    scalars = [updater.step(pipeline, batches, step) for step in (1, 2, 3)][-1]
    assert scalars and all(torch.isfinite(v) for v in scalars.values()), scalars
    assert all(p.dtype == torch.float32 for p in pipeline.nets.parameters())


# -- genrun-sample and genrun-eval -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pix2pix") / "run"
    run(compose_config(*tiny("pix2pix", "trainer.max_steps=2", "features=none")), folder)
    return folder


def test_genrun_sample_translates_a_split_or_a_folder(pix2pix_run, tmp_path):
    from genrun.sample import sample_command

    grid = sample_command(str(pix2pix_run), n=12)
    assert grid == pix2pix_run / "samples" / "translated_test.png"
    side = 3 * 2 * (8 * 8 + 2) + 2  # 6 x 6 cells of 64 px (upscaled) and 2 px padding: 2 groups of 3 rows
    assert Image.open(grid).size == (side, side)
    write_images(tmp_path / "mine", ["a.png", "b.png", "c.png"], size=20)
    out = sample_command(str(pix2pix_run), n=2, input=str(tmp_path / "mine"), out=str(tmp_path / "t.pt"))
    assert torch.load(out).shape == (2, 1, 8, 8)
    with pytest.raises(GenrunError, match=r"input=validation: the run's dataset has no such split"):
        sample_command(str(pix2pix_run), input="validation")


def test_genrun_eval_of_a_translation_run_gives_its_metrics(pix2pix_run):
    from genrun.eval_command import evaluate_run

    evaluated = json.loads(evaluate_run(pix2pix_run).read_text())
    saved = json.loads((pix2pix_run / "metrics.json").read_text())
    assert {k: evaluated[k] for k in ("psnr", "ssim", "l1")} == {k: saved[k] for k in ("psnr", "ssim", "l1")}


# -- bad input: one line, before any training ------------------------------------------------------
BAD = [
    (["model=pix2pix", "dataset=paired", *DIGITS, "dataset.task=edges", "model.generator.depth=5"],
     r"model.generator.depth=5: the U-Net halves the image 5 times, so its size must divide by 32; the task's images "
     r"are 16 px \(valid depths here: 1 to 4"),
    (["model=context_encoder", "dataset=paired", *DIGITS, "dataset.task=masked", "dataset.mask_size=16"],
     r"dataset.mask_size=16 does not fit dataset.image_size=16: .*\(valid: 1 to 15\)"),
    (["model=pix2pix", "dataset=paired", *DIGITS, "dataset.task=lowres"], r"use model=srgan"),
    (["model=pix2pix", "dataset=unpaired", *DIGITS], r"it learns from pairs.*use model=cyclegan"),
    (["model=pix2pix", "dataset=digits"], r"it translates images: use a translation dataset \(dataset=paired, unpaired or paired_folders\)"),
    (["model=srgan", "dataset=paired", *DIGITS, "dataset.task=lowres", "dataset.scale=3"],
     r"dataset.scale=3: .*\(valid here: 2, 4, 8, 16\)"),
    (["model=pix2pix", "dataset=paired", *DIGITS, "dataset.task=colour"], r"dataset.task='colour': valid: edges"),
    (["model=cyclegan", "dataset=unpaired", *DIGITS, "dataset.target=ring8"], r"dataset.target='ring8': valid"),
    # 8 px digits at 32 px have soft edges: the default threshold would give blank inputs
    (["model=pix2pix", "dataset=paired", "dataset.source=digits", "dataset.image_size=32", "dataset.task=edges"],
     r"dataset.edge_threshold=0.25: 100% of the images have no edge above it .* valid: below that, e.g. "
     r"dataset.edge_threshold=0.1"),
    (["model=cyclegan", "dataset=unpaired", "dataset.source=digits", "dataset.image_size=32", "dataset.target=edges"],
     r"dataset.edge_threshold=0.25: \d+% of the images have no edge above it"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o[3:]) for o, _ in BAD])
def test_bad_input_is_one_line_before_training(tmp_path, overrides, message):
    with pytest.raises(GenrunError, match=message):
        run(compose_config(*overrides, "trainer=debug", "eval=debug"), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_label_preservation_on_unlabelled_pairs_and_unmatched_folders_are_one_line(tmp_path):
    write_images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    write_images(tmp_path / "out", ["a.png", "b.png", "c.png"])
    write_images(tmp_path / "other", ["x.png", "y.png"])
    folders = ["model=pix2pix", "dataset=paired_folders", "dataset.image_size=8", "dataset.channels=1",
               f"dataset.inputs={tmp_path / 'in'}", "trainer=debug", "eval=debug", "trainer.batch_size=2"]
    with pytest.raises(GenrunError, match=r"metrics: label_preservation needs class labels, and dataset.targets="):
        run(compose_config(*folders, f"dataset.targets={tmp_path / 'out'}", "metrics=[label_preservation]"),
            tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(GenrunError, match=r"share no file names .* 3 inputs \(e.g. a\), 2 targets \(e.g. x\)"):
        build_data(compose_config(*folders, f"dataset.targets={tmp_path / 'other'}"))


def test_a_translation_metric_on_another_family_is_left_out_with_the_reason(tmp_path):
    data = DataBundle(train=torch.zeros(4, 1, 8, 8), inputs=Inputs({"train": torch.zeros(4, 1, 8, 8).byte()},
                                                                   {"train": None}))
    assert data.examples(2)["input"].shape == (2, 1, 8, 8)
    result = run(compose_config("trainer=debug", "eval=debug", "trainer.max_steps=1", "metrics=[paired,cycle]",
                                "model.generator.width=8", "model.discriminator.width=8"), tmp_path)
    assert "has no translation of inputs" in result["protocol"]["skipped"]["paired"]


@pytest.mark.trains
def test_pix2pix_trains_in_two_gloo_processes_with_the_same_weights(tmp_path):
    from tests.test_distributed import TORCHRUN, torchrun

    if TORCHRUN is None:
        pytest.skip("torchrun (torch's launcher) is not on the PATH")
    torchrun(*tiny("pix2pix", "trainer.max_steps=3", "features=none", "metrics=[paired]"),
             f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["weights_in_sync"] is True and math.isfinite(metrics["psnr"])
