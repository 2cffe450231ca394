"""Tomography projectors and RESIRE iterations vs ASTRA 2D CPU, scikit-image and plain NumPy.

CPU (``ctx.device`` cpu): volumes 128^3 and 256^3 with 60 tilts about y (-70..70 deg)

* voxel x projection updates per second of the forward and back projections, fastem's
  ``linear`` pair (4 object-space sub-points, 8-16 taps) and bilinear pair (1 point, 2-4 taps), against ASTRA's
  2D CPU projectors (Joseph ``linear``) applied slice by slice on the same single-axis data
  and scikit-image ``radon`` / ``iradon(filter_name=None)`` (timed on a few slices and scaled to
  the volume, as noted);
* one forward + back pair (what an iteration costs) side by side with ASTRA's FP + BP;
* time per RESIRE iteration with the ``fst`` and ``linear`` projectors, per SIRT iteration, and
  per ASTRA SIRT iteration (slice by slice);
* the float64 NumPy reference iteration (``fastem.tomo._reference``) at 32^3 as the
  straightforward-NumPy peer.

GPU (``ctx.device`` cuda): 256^3 and 512^3 with 120 projections: projector updates/s, RESIRE
iteration times (``fst`` os=2 and os=4 -- lowered automatically when the padded spectrum does
not fit -- and ``linear``), and device memory held.

``ctx.quick``: 32^3, 12 projections, no scikit-image / NumPy peers (a few seconds).
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.config import settings

NAME = "tomo"
DESCRIPTION = "tomography: projector updates/s and RESIRE iteration time vs ASTRA 2D CPU, scikit-image, NumPy"

UNIT = "voxel*proj"


def _volume(n: int, rng) -> np.ndarray:
    """A smooth positive test volume (the projectors' speed does not depend on the content,
    except that the forward kernels skip exact zeros: keep it dense)."""
    return (0.5 + rng.random((n, n, n))).astype(np.float32)


def _cpu(ctx, rng) -> None:
    from fastem.bench import astra_peer
    from fastem.kernels import back_project, forward_project
    from fastem.kernels.back_project import BORDER
    from fastem.tomo import ProjectionGeometry, Resire, Sirt, TomoProblem

    sizes, n_proj = ([32], 12) if ctx.quick else ([128, 256], 60)
    tilts = np.linspace(-70.0, 70.0, n_proj)
    for n in sizes:
        label = f"{n}^3 x {n_proj}"
        work = float(n) ** 3 * n_proj
        geo = ProjectionGeometry((n, n, n), (n, n), tilts)
        vol = _volume(n, rng)
        coeffs = geo.coefficients
        bordered = np.zeros((n_proj, n + 2 * BORDER, n + 2 * BORDER), np.float32)
        forward_project(vol, coeffs, bordered, subpoints=4, border=BORDER)
        bordered[:, :BORDER] = bordered[:, -BORDER:] = 0
        bordered[:, :, :BORDER] = bordered[:, :, -BORDER:] = 0
        out = np.empty_like(vol)
        thr = f"{settings.threads} thr"
        big = dict(repeat=3, warmup=1) if n >= 256 else {}
        for sub, name in ((4, "linear"), (1, "bilinear")):
            ctx.measure("forward projection", label, f"fastem {name} ({thr})",
                        lambda s=sub: forward_project(vol, coeffs, bordered, subpoints=s, border=BORDER),
                        work=work, work_unit=UNIT, **big)
            ctx.measure("back projection", label, f"fastem {name} ({thr})",
                        lambda s=sub: back_project(bordered, coeffs, out, subpoints=s, border=BORDER),
                        work=work, work_unit=UNIT, **big)
            ctx.measure("forward + back", label, f"fastem {name} pair ({thr})",
                        lambda s=sub: (forward_project(vol, coeffs, bordered, subpoints=s, border=BORDER),
                                       back_project(bordered, coeffs, out, subpoints=s, border=BORDER)),
                        work=work, work_unit=UNIT, **big)
        if astra_peer.available():
            if settings.threads > 1:
                ctx.note(f"ASTRA's 2D CPU projectors are single-threaded, fastem ran on {settings.threads} threads: "
                         "for a per-core ratio run 'fastem --threads 1 bench tomo' or bench/tomo_astra_threads.py")
            peer = astra_peer.AstraSlices(vol.shape, n, tilts, projector="linear")
            sino = peer.forward(vol)
            ctx.measure("forward projection", label, "ASTRA 2D CPU linear, per slice", lambda: peer.forward(vol),
                        role="peer", work=work, work_unit=UNIT, repeat=3, warmup=1)
            ctx.measure("back projection", label, "ASTRA 2D CPU linear, per slice", lambda: peer.back(sino),
                        role="peer", work=work, work_unit=UNIT, repeat=3, warmup=1)
            ctx.measure("forward + back", label, "ASTRA 2D CPU FP + BP, per slice",
                        lambda: (peer.forward(vol), peer.back(sino)), role="peer", work=work, work_unit=UNIT,
                        repeat=3, warmup=1)
            ctx.measure("SIRT iteration", label, "ASTRA 2D CPU SIRT, per slice",
                        lambda: peer.sirt(sino, 1), role="peer", repeat=3, warmup=1)
            peer.close()
        else:
            ctx.note("astra-toolbox not installed: ASTRA peers skipped (pip install 'fastem[bench]')")
        if not ctx.quick:
            _skimage(ctx, vol, tilts, label, work)
        forward_project(vol, coeffs, bordered, subpoints=4, border=BORDER)
        data = np.ascontiguousarray(bordered[:, BORDER:-BORDER, BORDER:-BORDER])
        problem = TomoProblem(data, tilts)
        for projector in ("fst", "linear"):
            solver = Resire(problem, projector=projector)
            ctx.measure("RESIRE iteration", label, f"fastem RESIRE {projector}", solver.iterate,
                        work=work, work_unit=UNIT, **(big or {"repeat": 5}))
            del solver
        solver = Sirt(problem)
        ctx.measure("SIRT iteration", label, "fastem SIRT (linear pair)", solver.iterate, work=work,
                    work_unit=UNIT, **(big or {"repeat": 5}))
        del solver, problem
    if not ctx.quick:
        _numpy_reference(ctx, rng)


def _skimage(ctx, vol, tilts, label, work) -> None:
    try:
        from skimage.transform import iradon, radon
    except Exception:
        ctx.note("scikit-image not installed: radon/iradon peers skipped")
        return
    n = vol.shape[0]
    k = 4  # slices timed; the time is scaled to all n slices
    theta = 90.0 - tilts  # skimage measures angles from the vertical; only the cost matters here
    slices = [np.ascontiguousarray(vol[:, y, :], dtype=np.float64) for y in range(k)]
    sinos = [radon(s, theta=theta, circle=False) for s in slices]
    note = f"scikit-image timed on {k} of {n} slices, scaled"
    ctx.measure("forward projection", label, "scikit-image radon, per slice",
                lambda: [radon(s, theta=theta, circle=False) for s in slices], role="peer", work=work,
                work_unit=UNIT, per_call=k / n, repeat=2, warmup=1, note=note)
    ctx.measure("back projection", label, "scikit-image iradon (no filter)",
                lambda: [iradon(s, theta=theta, filter_name=None, circle=False, output_size=n) for s in sinos],
                role="peer", work=work, work_unit=UNIT, per_call=k / n, repeat=2, warmup=1, note=note)


def _numpy_reference(ctx, rng) -> None:
    from fastem.tomo import ProjectionGeometry, Resire, TomoProblem
    from fastem.tomo import _reference as ref

    n, n_proj = 32, 60
    tilts = np.linspace(-70.0, 70.0, n_proj)
    geo = ProjectionGeometry((n, n, n), (n, n), tilts)
    data = ref.forward_project_linear(_volume(n, rng), geo).astype(np.float32)
    label = f"{n}^3 x {n_proj}"
    work = float(n) ** 3 * n_proj
    solver = Resire(TomoProblem(data, tilts), projector="linear")
    ctx.measure("RESIRE iteration", label, "fastem RESIRE linear", solver.iterate, work=work, work_unit=UNIT)
    ctx.measure("RESIRE iteration", label, "NumPy float64 reference (linear)",
                lambda: ref.resire(data, geo, 1, projector="linear"), role="reference", repeat=2, warmup=1,
                note="includes one extra forward projection for the final R-factor", per_call=2.0)


def _gpu(ctx, rng) -> None:
    from fastem.kernels import back_project, forward_project
    from fastem.kernels.back_project import BORDER
    from fastem.tomo import ProjectionGeometry, Resire, TomoProblem

    xp = ctx.xp
    pool = xp.get_default_memory_pool()
    sizes, n_proj = ([64], 16) if ctx.quick else ([256, 512], 120)
    tilts = np.linspace(-70.0, 70.0, n_proj)
    for n in sizes:
        label = f"{n}^3 x {n_proj}"
        work = float(n) ** 3 * n_proj
        geo = ProjectionGeometry((n, n, n), (n, n), tilts)
        with ctx.device.use():
            vol = xp.asarray(_volume(n, rng))
            coeffs = xp.asarray(geo.coefficients)
            images = xp.zeros((n_proj, n + 2 * BORDER, n + 2 * BORDER), xp.float32)
            out = xp.empty_like(vol)
            for engine in ("cuda", "numba-cuda"):
                for sub, name in ((4, "linear"), (1, "bilinear")):
                    ctx.measure("forward projection", label, f"fastem {name} ({engine})",
                                lambda s=sub, e=engine: forward_project(vol, coeffs, images, subpoints=s,
                                                                        border=BORDER, engine=e),
                                work=work, work_unit=UNIT)
                    ctx.measure("back projection", label, f"fastem {name} ({engine})",
                                lambda s=sub, e=engine: back_project(images, coeffs, out, subpoints=s,
                                                                     border=BORDER, engine=e),
                                work=work, work_unit=UNIT)
            data = xp.ascontiguousarray(images[:, BORDER:-BORDER, BORDER:-BORDER])
            del images, out
            problem = TomoProblem(data, tilts, device=ctx.device)
            for projector, os_ in (("linear", 2.0), ("fst", 2.0), ("fst", 4.0)):
                pool.free_all_blocks()
                before = pool.used_bytes()
                import warnings

                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    solver = Resire(problem, projector=projector, oversampling=os_)
                used = (pool.used_bytes() - before) / 2**30
                tag = f"fastem RESIRE {projector}" + (f" os={os_:g}" if projector == "fst" else "")
                m = ctx.measure("RESIRE iteration", label, tag, solver.iterate, work=work, work_unit=UNIT,
                                repeat=5)
                extra = ""
                if projector == "fst" and not np.allclose(solver.op.oversampling, os_):
                    extra = f"; oversampling lowered to {solver.op.oversampling[0]:g} to fit"
                m.note = f"{used:.2f} GiB held by the solver{extra}"
                ctx.note(f"{label} {tag}: {used:.2f} GiB device memory held by the solver{extra}"
                         + (f" ({caught[0].message})" if caught else ""))
                del solver
            del problem, vol, coeffs, data
            pool.free_all_blocks()


def run(ctx) -> None:
    rng = np.random.default_rng(0)
    if ctx.device.is_gpu:
        _gpu(ctx, rng)
        return
    if backend.cupy_available():
        ctx.note("a GPU is present: run `fastem --device cuda bench tomo` for the GPU cases")
    _cpu(ctx, rng)
