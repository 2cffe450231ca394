"""Completion GAN (issue 12 s.4): inference latency per 512x512 scan and training throughput.

Inference: ``fastem.nn.inference.complete_partial_scans`` (NumPy in, NumPy out: the whole
``scan complete --method model`` path) on spiral 1/20 partial scans of 512x512 synthetic
micrographs at batch 1 and 4, on the CPU and, when PyTorch sees one, on the CUDA GPU (seed 000
reports 50 ms per 512x512 scan on a GTX 1080 Ti); the generator's forward pass alone is the
reference row; one more row times batch 1 with the 8-transform self-ensemble
(``ensemble=8``: 8 forward passes, ``scan complete --ensemble 8``). The model is, in this order:
the file named by ``FASTEM_BENCH_MODEL``, the packaged default model (``fastem.nn.default_model``),
or a freshly initialised default-config generator (same architecture and cost, meaningless
completions); the notes say which.

Training (on the GPU when there is one, else the CPU; the model's config, crop and batch from
its record): steps/s of ``CompletionTask.train_step`` with the data pipeline on (fresh partial
scans from ``PartialScanSource`` every step, as ``scan train`` runs) and off (one pre-generated
batch re-used through ``TensorSource``), in the non-adversarial stage 1 and the adversarial stage
3, and the data pipeline alone (batches/s). A note gives the headroom ratio pipeline batches/s over
trainer steps/s (above 1: the generator can keep the trainer fed) and the step-time overhead
of making the data in line.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from fastem import backend

NAME = "scan-model"
DESCRIPTION = ("completion GAN: inference latency per 512x512 scan (batch 1 and 4; CPU, CUDA when available) and "
               "training steps/s with the data pipeline on/off, plus the pipeline alone")
#: environment variable naming a model file to benchmark instead of the packaged one
MODEL_ENV = "FASTEM_BENCH_MODEL"
PAPER_LATENCY_S = 0.050   # seed 000 s.3: 50 ms per 512x512 scan on a GTX 1080 Ti


def resolve_model(torch):
    """``(generator, info, description)``: ``$FASTEM_BENCH_MODEL``, the packaged model, or a fresh one."""
    from fastem.errors import InputError
    from fastem.nn.completion import CompletionConfig, CompletionGenerator
    from fastem.nn.default_model import default_model_path
    from fastem.nn.model import load_model

    env = os.environ.get(MODEL_ENV)
    if env:
        if not Path(env).is_file():
            raise InputError(f"{MODEL_ENV}={env}: no such model file")
        net, info = load_model(env, kind="completion-gan")
        return net, info, f"model file {env} (from {MODEL_ENV})"
    packaged = Path(default_model_path())
    if packaged.is_file():
        net, info = load_model(packaged, kind="completion-gan")
        return net, info, f"packaged default model {packaged}"
    cfg = CompletionConfig()
    torch.manual_seed(0)
    net = CompletionGenerator(cfg).eval()
    return net, {"kind": "completion-gan", "config": cfg.to_dict(), "record": {}}, (
        f"freshly initialised default-config generator (no packaged model at {packaged}, {MODEL_ENV} unset): "
        "same cost as a trained one, completions meaningless")


def run(ctx) -> None:
    torch = backend.optional_module("torch")
    if torch is None:
        ctx.note("torch not installed: no model rows; the data pipeline (NumPy) is timed alone")
        _pipeline_only(ctx)
        return
    net, info, what = resolve_model(torch)
    n_params = sum(p.numel() for p in net.parameters())
    ctx.note(f"model: {what}; width {info['config'].get('width')}, {n_params / 1e6:.2f} M parameters; "
             f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if not torch.cuda.is_available():
        ctx.note("CPU only: PyTorch sees no CUDA device, so no GPU latency (the paper: 50 ms on a GTX 1080 Ti)")
    _inference(ctx, torch, net, devices)
    _training(ctx, torch, info, "cuda" if "cuda" in devices else "cpu")


def _sync(torch, dev: str):
    return (lambda: torch.cuda.synchronize()) if dev == "cuda" else (lambda: None)


def _inference(ctx, torch, net, devices) -> None:
    from fastem.data.stem import generate_stem
    from fastem.nn.inference import complete_partial_scans
    from fastem.scan import PartialScanPipeline

    size = 128 if ctx.quick else 512
    images = generate_stem(4, size, seed=1, device="cpu")
    scans = PartialScanPipeline(4, (size, size), "spiral", 1 / 20, seed=0, device="cpu")(images, 0)
    partial, path = np.array(scans.partial), np.array(scans.path)
    rep = {} if ctx.quick else dict(repeat=9, min_time=1.0)
    medians = {}
    for dev in devices:
        net.to(dev).eval()
        sync = _sync(torch, dev)
        for b in (1, 4):
            label = f"{b}x{size}x{size}"
            case = f"model inference {dev}"
            m = ctx.measure(case, label, "complete_partial_scans",
                            lambda b=b, dev=dev: complete_partial_scans(net, partial[:b], path[:b], batch=b,
                                                                        device=dev),
                            work=b, work_unit="scan", **rep)
            medians[dev, b] = m.median_s / b
            x = torch.from_numpy(np.stack([partial[:b], path[:b]], axis=1)).to(dev)

            def forward(x=x, sync=sync):
                with torch.no_grad():
                    net.complete(x)
                sync()

            ctx.measure(case, label, "generator forward only", forward, role="reference", work=b, work_unit="scan",
                        **rep)
        m = ctx.measure(f"model inference {dev}, self-ensemble 8", f"1x{size}x{size}",
                        "complete_partial_scans ensemble=8",
                        lambda dev=dev: complete_partial_scans(net, partial[:1], path[:1], batch=1, device=dev,
                                                               ensemble=8),
                        work=1, work_unit="scan", **rep)
        medians[dev, "ensemble"] = m.median_s
    net.to("cpu")
    for dev in devices:
        ctx.note(f"latency per {size}x{size} scan on {dev}: batch 1 {medians[dev, 1] * 1e3:.1f} ms, batch 4 "
                 f"{medians[dev, 4] * 1e3:.1f} ms/scan, self-ensemble of 8 {medians[dev, 'ensemble'] * 1e3:.1f} ms "
                 f"(paper: {PAPER_LATENCY_S * 1e3:.0f} ms at 512x512 on a GTX 1080 Ti)")


def _training(ctx, torch, info, dev: str) -> None:
    from fastem.nn.completion import CompletionConfig
    from fastem.nn.completion_data import PartialScanSource, TensorSource
    from fastem.nn.completion_train import CompletionTask

    rec = info.get("record") or {}
    cfg = CompletionConfig.from_dict(info["config"])
    crop = 64 if ctx.quick else int(rec.get("crop") or 64)
    batch = 2 if ctx.quick else int(rec.get("batch") or 4)
    kind, cov = rec.get("path") or "spiral", float(rec.get("coverage") or 1 / 20)
    data_dev = "cuda" if dev == "cuda" and backend.cupy_available() else "cpu"
    if dev == "cuda" and data_dev == "cpu":
        ctx.note("training on CUDA with the data pipeline on the CPU (CuPy missing): batches are copied per step")
    source = PartialScanSource(None, synthetic=4 if ctx.quick else 32, crop=crop, batch_size=batch, kind=kind,
                               coverage=cov, seed=0, device=data_dev)
    x0, y0 = source.batch(0)
    fixed = TensorSource(x0.to(dev), y0.to(dev), batch_size=batch)
    total = 4000   # stage 1 = steps [0, 1000), stage 3 (adversarial) = [2000, 3000)
    sync = _sync(torch, dev)
    label = f"{batch}x{crop}x{crop} {dev}"
    rep = {} if ctx.quick else dict(repeat=7, min_time=2.0)
    steps = {}
    for stage, start in (("stage 1 (MSE)", 0), ("stage 3 (GAN)", total // 2)):
        for impl, role, src in (("pipeline on (fresh scans)", "fastem", source),
                                ("pipeline off (fixed batch)", "reference", fixed)):
            task = CompletionTask(cfg, src, total_steps=total, seed=0, device=dev)
            counter = itertools.count(start)

            def step(task=task, counter=counter):
                task.train_step(next(counter))
                sync()

            m = ctx.measure(f"train step, {stage}", label, impl, step, role=role, work=1, work_unit="step", **rep)
            steps[stage, role] = m.median_s
    counter = itertools.count(1)

    def make_batch():
        source.batch(next(counter))
        if data_dev == "cuda":
            sync()

    pipe = ctx.measure("data pipeline alone", f"{batch}x{crop}x{crop} {data_dev}", "PartialScanSource.batch",
                       make_batch, work=1, work_unit="batch", **rep)
    for stage in ("stage 1 (MSE)", "stage 3 (GAN)"):
        on, off = steps[stage, "fastem"], steps[stage, "reference"]
        ctx.note(f"{stage}: pipeline {1 / pipe.median_s:.1f} batches/s vs trainer {1 / off:.2f} steps/s without it: "
                 f"headroom {off / pipe.median_s:.1f}x ({'enough' if off > pipe.median_s else 'the pipeline is slower'}"
                 f"); making the data in line costs {100 * (on / off - 1):+.0f} % step time")


def _pipeline_only(ctx) -> None:
    from fastem.data.stem import generate_stem
    from fastem.scan import PartialScanPipeline

    size, batch = (64, 2) if ctx.quick else (64, 4)
    images = generate_stem(batch, size, seed=1, device="cpu")
    pipe = PartialScanPipeline(batch, (size, size), "spiral", 1 / 20, seed=0, device="cpu")
    counter = itertools.count(0, batch)
    ctx.measure("data pipeline alone", f"{batch}x{size}x{size} cpu", "PartialScanPipeline",
                lambda: pipe(images, next(counter)), work=1, work_unit="batch")
