"""Partial-scan throughput: fastem's batched kernels vs the same pipeline written with NumPy/SciPy.

One "scan" = one 512x512 example: path (spiral or jittered grid at 1/20 coverage), dihedral
augmentation, cleanup + normalisation, 5x5 Gaussian target, the dwell-dependent noise model and
the nearest-sample infill (exact EDT). The peer is ``fastem.scan._reference.pipeline``: NumPy
paths, ``scipy.ndimage.correlate1d`` blur, NumPy ``Generator.random`` noise and
``scipy.ndimage.distance_transform_edt`` indices. Stage rows compare the EDT infill and the
normalise+blur stage alone. On a GPU: batches of 64 through the CUDA kernels, against the same
pipeline in CuPy/cupyx (``cupyx.scipy.ndimage``) where it is available.
"""

from __future__ import annotations

import numpy as np

from fastem.config import settings

NAME = "scan"
DESCRIPTION = "partial scans/s at 512x512 (path + noise + blur + infill): fastem kernels vs NumPy/SciPy (and CuPy)"


def run(ctx) -> None:
    from fastem.data.stem import generate_stem
    from fastem.scan import solve_coverage

    size = 128 if ctx.quick else 512
    batch = (4 if ctx.quick else 64) if ctx.device.is_gpu else (2 if ctx.quick else 8)
    images = generate_stem(batch, size, seed=1, device="cpu")
    params = {kind: solve_coverage(kind, 1 / 20, (size, size)) for kind in ("spiral", "grid")}
    if ctx.device.is_gpu:
        _run_gpu(ctx, images, params, size, batch)
    else:
        _run_cpu(ctx, images, params, size, batch)


def _pipeline(kind, param, batch, size, device):
    from fastem.scan import PartialScanPipeline

    key = {"spacing": param} if kind == "spiral" else {"u": param}
    return PartialScanPipeline(batch, (size, size), kind, seed=0, augment=True, device=device, **key)


def _run_cpu(ctx, images, params, size, batch) -> None:
    from scipy import ndimage

    from fastem.kernels import nearest_sampled, normalise_blur
    from fastem.scan import _reference as ref

    label = f"{batch}x{size}x{size}"
    rng = np.random.default_rng(0)
    for kind, param in params.items():
        pipe = _pipeline(kind, param, batch, size, "cpu")
        case = f"partial scan {kind} 1/20"
        ctx.measure(case, label, f"fastem (Numba, {settings.threads} thr)", lambda: pipe(images, 0),
                    work=batch, work_unit="scan")
        ctx.measure(case, label, "NumPy/SciPy pipeline",
                    lambda: ref.pipeline(images, kind, param, augment=True, uniform=lambda b, s: rng.random(s)),
                    role="peer", work=batch, work_unit="scan", repeat=3, warmup=1)
    # stages on the spiral paths
    pipe = _pipeline("spiral", params["spiral"], batch, size, "cpu")
    pipe(images, 0)
    path = pipe.path.copy()
    nearest = np.empty(path.shape, np.int32)
    ctx.measure("nearest infill (exact EDT)", label, "fastem nearest_sampled", lambda: nearest_sampled(path, nearest),
                work=batch, work_unit="scan")
    ctx.measure("nearest infill (exact EDT)", label, "scipy distance_transform_edt",
                lambda: [ndimage.distance_transform_edt(p == 0, return_distances=False, return_indices=True)
                         for p in path], role="peer", work=batch, work_unit="scan")
    img, blur = np.empty(path.shape, np.float32), np.empty(path.shape, np.float32)
    ctx.measure("normalise + blur", label, "fastem normalise_blur", lambda: normalise_blur(images, img, blur),
                work=batch, work_unit="scan")
    ctx.measure("normalise + blur", label, "NumPy + scipy correlate1d",
                lambda: [ref.gaussian_blur(ref.normalise(x)) for x in images], role="peer", work=batch,
                work_unit="scan")


def _run_gpu(ctx, images, params, size, batch) -> None:
    xp = ctx.xp
    label = f"{batch}x{size}x{size}"
    with ctx.device.use():
        dimages = xp.asarray(images)
        for kind, param in params.items():
            pipe = _pipeline(kind, param, batch, size, ctx.device)
            case = f"partial scan {kind} 1/20"
            ctx.measure(case, label, "fastem (CUDA kernels)", lambda: pipe(dimages, 0), work=batch, work_unit="scan")
            ctx.measure(case, label, "fastem kernels, stages only (paths reused)", lambda: pipe(dimages, 0, path=pipe.path),
                        role="reference", work=batch, work_unit="scan")
            try:
                import cupyx.scipy.ndimage as cnd
            except ImportError:
                ctx.note("cupyx.scipy.ndimage is not available: no CuPy peer")
                continue
            peer = _cupy_pipeline(xp, cnd, pipe.path)
            ctx.measure(case, label, "CuPy/cupyx pipeline (fastem paths)", lambda: peer(dimages), role="peer",
                        work=batch, work_unit="scan", repeat=3, warmup=1)


def _cupy_pipeline(cp, cnd, path):
    """The same stages written with CuPy array operations and cupyx.scipy.ndimage (paths given)."""
    from fastem.scan._reference import blur_weights

    w = cp.asarray(blur_weights())
    rs = cp.random.RandomState(0)

    def run(images):
        x = cp.where(cp.isfinite(images), images, 0).astype(cp.float64)
        lo = x.min(axis=(1, 2), keepdims=True)
        hi = x.max(axis=(1, 2), keepdims=True)
        img = cp.where(hi - lo < 1e-6, 0.0, 2 * (x - lo) / cp.maximum(hi - lo, 1e-300) - 1)
        blur = cnd.correlate1d(cnd.correlate1d(img, w, axis=2, mode="reflect"), w, axis=1, mode="reflect")
        m = path.astype(cp.float64)
        det = m * (m * img + 2 * (1 - m) * rs.random_sample(m.shape) * blur)
        out = cp.empty_like(det)
        for b in range(det.shape[0]):
            ind = cnd.distance_transform_edt(m[b] == 0, return_distances=False, return_indices=True)
            out[b] = det[b][tuple(ind)]
        return out, blur

    return run
