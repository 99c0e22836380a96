"""What each metric costs at its default sample count, on this machine (the README's cost table).

    .venv/bin/python scripts/bench_eval.py [--threads 2] [--out table.md]

Cases, each on an untrained model (the cost does not depend on the weights):
  * the default job's evaluation (dcgan on digits, genrun's classifier features, 5,000
    samples against the 1,438 training digits, floor against the 359 held-out ones): the
    classifier's training (empty cache) and loading (warm cache), then every default metric;
  * the 2D mixtures (ring8, raw features, 5,000 samples against 5,000 training points);
  * the IWAE bound of the default VAE on the 359 held-out digits, k = 100 (default) and k = 5000
    (the literature's figure, timed on 36 examples and scaled);
  * Inception-v3 features (torch-fidelity, random weights: the cost is the same), per image on
    200 images, scaled to 10,000 (5,000 generated + 5,000 real), when torch-fidelity is installed.
Run it alone: two torch processes on 2 cores slow each other several-fold. The evaluation's share
of whole runs (cold and warm cache) is scripts/bench_eval_share.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import torch

from genrun.config import register
from genrun.evaluation import Evaluator, draw_samples
from genrun.metrics.base import in_chunks


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("genrun.configs", version_base=None):
        return hydra_compose("config", overrides=list(overrides))


def built(*overrides: str):
    from genrun.build import build_data, build_evaluator, build_pipeline

    cfg = compose(*overrides)
    device = torch.device("cpu")
    return cfg, build_pipeline(cfg, device), build_data(cfg), build_evaluator(cfg, device)


def timed(fn) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def metric_rows(case: str, evaluator: Evaluator, pipeline, data) -> list[tuple[str, str, str, float]]:
    """One row per metric: its own time, with the samples and their features computed before."""
    evaluator.prepare(data)
    ctx = evaluator.context(pipeline, data, "test")
    rows = []
    _, t = timed(lambda: ctx.fake)
    rows.append((case, "draw samples", f"{evaluator.n_fake}", t))
    if evaluator.space is not None:
        _, t = timed(lambda: ctx.fake_features)
        rows.append((case, f"features ({evaluator.space.name})", f"{evaluator.n_fake}", t))
        if evaluator.space.has_logits:
            _, t = timed(lambda: ctx.fake_logits)
            rows.append((case, "class logits", f"{evaluator.n_fake}", t))
    for name, metric in evaluator.metrics.items():
        if metric.missing(ctx) is None:
            _, t = timed(lambda m=metric: m(ctx))
            rows.append((case, name, f"{evaluator.n_fake} vs {len(evaluator._real)}", t))
    return rows


def default_job_rows() -> list[tuple[str, str, str, float]]:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GENRUN_CACHE"] = cache
        _, pipeline, data, evaluator = built()
        _, cold = timed(lambda: evaluator.prepare(data))
        evaluator._data_id = None
        _, warm = timed(lambda: evaluator.prepare(data))
        rows = [("digits (default job)", "classifier: train, empty cache (+ real features)", "1438", cold),
                ("digits (default job)", "classifier: load, warm cache (+ real features)", "1438", warm)]
        rows += metric_rows("digits (default job)", evaluator, pipeline, data)
        evaluator._floors = {}
        result, total = timed(lambda: evaluator(pipeline, data))
        rows.append(("digits (default job)", "whole evaluation incl. floor (warm cache)", "5000", total))
    return rows


def ring_rows() -> list[tuple[str, str, str, float]]:
    _, pipeline, data, evaluator = built("model=gan", "dataset=ring8")
    return metric_rows("ring8", evaluator, pipeline, data)


def iwae_rows() -> list[tuple[str, str, str, float]]:
    _, pipeline, data, _ = built("model=vae", "dataset.binarize=dynamic")
    held_out = data.examples(10_000, "test")
    n = len(held_out["x"])
    rows = []
    for k, examples in ((100, n), (5000, 36)):
        part = {key: v[:examples] for key, v in held_out.items()}
        g = torch.Generator().manual_seed(0)
        _, t = timed(lambda k=k, part=part, g=g: pipeline.importance_weighted_bound(part, k, g))
        rows.append(("vae on digits", f"iwae k={k}" + (" (scaled)" if examples < n else ""), f"{n} held-out",
                     t * n / examples))
    return rows


def random_inception_weights(path: str) -> str:
    """torch-fidelity's Inception-v3 with random weights, saved as its weight file (no download)."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)
    return path


def inception_rows() -> list[tuple[str, str, str, float]]:
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return [("inception", "not installed (pip install genrun[inception])", "-", float("nan"))]
    from genrun.metrics.inception import InceptionFeatures

    with tempfile.TemporaryDirectory() as folder:
        space = InceptionFeatures(random_inception_weights(os.path.join(folder, "w.pth")))
        _, pipeline, data, _ = built()
        space.prepare(data, (-1.0, 1.0), torch.device("cpu"))
        x = draw_samples(pipeline, 200, 0)
        _, t = timed(lambda: in_chunks(space.features, x, 50))
    return [("inception (CPU)", "Inception-v3 features, 200 images, scaled to 10,000", "10000", t * 50)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-inception", action="store_true")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    register()
    rows = default_job_rows() + ring_rows() + iwae_rows()
    if not args.skip_inception:
        rows += inception_rows()
    lines = [f"torch {torch.__version__}, {args.threads} thread(s), CPU", "",
             "| data | step | samples | seconds |", "| --- | --- | --- | --- |"]
    lines += [f"| {case} | {what} | {n} | {t:.2f} |" for case, what, n, t in rows]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
