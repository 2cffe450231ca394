"""GPS phase retrieval speed: fastem's two-FFT iteration vs straightforward NumPy vs the FFT floor.

Cases (side by side in one run; ``fastem bench phase``):

``GPS-R iteration c64``, ``GPS-F iteration c64`` (512 x 512, one run; GPS-R is the default algorithm)
    fastem: one GPS iteration (2 FFTs + 2 fused kernels, dual carried in Fourier space);
    fastem + R_F: 5 iterations plus one R-factor evaluation, per iteration (the default
    ``rfactor_every=5``); peer: the same iteration written plainly with ``numpy.fft``
    (``fastem.phase._reference.gps_step``, float64, the test oracle); floor: one forward plus
    one inverse pyFFTW transform of the same complex64 array (same plan, same threads).
``GPS-R iteration c64, complex object (feedback dual)`` (512 x 512, one run, phase range +-pi/2)
    the same for a complex-valued object (the complex real-space step with the feedback dual).
``OSS iteration c64, complex object`` (512 x 512, one run, phase range +-pi/2)
    fastem: one OSS iteration of a complex-valued object (4 FFTs + 4 fused kernels: the
    complex real-space step of :mod:`fastem.kernels.phase_complex`); peer: the same iteration
    written plainly with ``numpy.fft`` (``fastem.phase._reference.baseline_step``, float64, the
    test oracle); floor: two forward plus two inverse pyFFTW transforms of the complex64 array.
``multi-start R=..`` (256 x 256 and 512 x 512; R = 1, 8, 64)
    throughput of batched GPS-F iterations (run x iterations per second), with the floor of two
    batched transforms of the ``(R, n, n)`` array.
On a GPU (``--device cuda``): the same iteration on cuFFT + CUDA C kernels for R up to 500 at
512 x 512 with the two-batched-cuFFT floor, and the paper's whole protocol: 500 runs x 1000
iterations at 512 x 512, keep the best 5 (one timed call).
"""

from __future__ import annotations

import numpy as np

NAME = "phase"
DESCRIPTION = "GPS-R / GPS-F iteration: fastem (2 FFTs + 2 fused kernels) vs NumPy reference vs 2-FFT floor; multi-start"


def _problem(n: int, device, seed: int = 0):
    from fastem.phase import prepare_problem

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:n, :n] - n // 2
    support = (np.abs(y) < n // 5) & (np.abs(x) < n // 6)
    obj = rng.random((n, n)) * support
    inten = np.abs(np.fft.fftshift(np.fft.fftn(obj))) ** 2
    known = (x**2 + y**2) > 4
    return prepare_problem(inten, known, support, dtype=np.complex64, device=device)


def _solver(problem, runs: int, algorithm: str = "gps-f", **options):
    from fastem.phase import PhaseConfig, initial_phases, make_solver

    sol = make_solver(problem, runs, PhaseConfig(algorithm=algorithm, iterations=1000, **options))
    sol.initialise(initial_phases(0, range(runs), problem.shape))
    sol.run(stop_at=2)  # stage filters set, kernels compiled, plans built
    return sol


def _gps_iteration(ctx, prob, algorithm: str, label: str, **options) -> None:
    """One GPS iteration (``algorithm`` gps-r / gps-f) beside the NumPy reference and the 2-FFT floor."""
    from fastem.config import settings
    from fastem.phase import _reference as ref

    dev = ctx.device
    sol = _solver(prob, 1, algorithm, **options)
    cx = options.get("complex_object", False)
    case = f"{algorithm.upper()} iteration c64" + (", complex object (feedback dual)" if cx else "")
    npix = int(np.prod(prob.shape))
    ctx.measure(case, label, "fastem (2 FFT + 2 fused kernels)", lambda: sol.step(0.01), work=npix,
                work_unit="px-iter")

    def five_and_rf():
        for k in range(5):
            sol.step(0.01, want_image=k == 4)
        sol.evaluate()

    if not cx:
        ctx.measure(case, label, "fastem + R_F every 5 (amortised)", five_and_rf, per_call=5, work=npix,
                    work_unit="px-iter")
    plan = sol.plan
    if dev.is_gpu:
        ctx.measure(case, label, "2 cuFFT transforms (floor)", lambda: (plan.forward(plan.buffer),
                    plan.backward(plan.buffer, normalise=False)), role="floor")
        ctx.note("no straightforward CuPy peer: the NumPy reference is CPU-only")
    else:
        ctx.measure(case, label, f"2 pyFFTW transforms, {settings.threads} thr (floor)",
                    lambda: (plan.forward(plan.buffer), plan.backward(plan.buffer, normalise=False)), role="floor")
        b = np.fft.ifftshift(prob.magnitudes)
        kn, sp = np.fft.ifftshift(prob.known), np.fft.ifftshift(prob.support)
        filt = ref._filters(algorithm, b.shape, 1, 10, 0.9, 1.0)
        state = {"z": b * np.exp(1j * np.random.default_rng(0).uniform(0, 2 * np.pi, b.shape)),
                 "y": np.zeros(b.shape, np.complex128)}
        extra = dict(complex_object=True, phase_range=options["phase_range"], gps_dual="feedback") if cx else {}

        def numpy_step():
            state["z"], state["y"] = ref.gps_step(state["z"], state["y"], b, kn, sp, 1.0, 0.9, 0.01, algorithm, filt,
                                                  **extra)

        ctx.measure(case, label, "NumPy reference (numpy.fft, float64)", numpy_step, role="peer",
                    repeat=3, min_time=0.0)


def run(ctx) -> None:
    from fastem.config import settings
    from fastem.phase import _reference as ref

    dev = ctx.device
    n_main = 64 if ctx.quick else 512
    prob = _problem(n_main, dev)
    label = f"{n_main}x{n_main}"
    npix = n_main * n_main
    for algorithm in ("gps-r", "gps-f"):       # gps-r: the default algorithm
        _gps_iteration(ctx, prob, algorithm, label)
    _gps_iteration(ctx, prob, "gps-r", label, complex_object=True, phase_range=(-np.pi / 2, np.pi / 2))

    # a complex-valued object: OSS with a phase range
    from fastem.phase import PhaseConfig, initial_phases, make_solver

    prange = (-np.pi / 2, np.pi / 2)
    csol = make_solver(prob, 1, PhaseConfig(algorithm="oss", iterations=1000, complex_object=True,
                                            phase_range=prange))
    csol.initialise(initial_phases(0, range(1), prob.shape))
    csol.run(stop_at=2)
    case = "OSS iteration c64, complex object"
    ctx.measure(case, label, "fastem (4 FFT + 4 fused kernels)", lambda: csol.step(0.0), work=npix,
                work_unit="px-iter")
    cplan = csol.plan
    if dev.is_gpu:
        ctx.measure(case, label, "4 cuFFT transforms (floor)", lambda: [(cplan.forward(cplan.buffer),
                    cplan.backward(cplan.buffer, normalise=False)) for _ in range(2)], role="floor")
    else:
        ctx.measure(case, label, f"4 pyFFTW transforms, {settings.threads} thr (floor)",
                    lambda: [(cplan.forward(cplan.buffer), cplan.backward(cplan.buffer, normalise=False))
                             for _ in range(2)], role="floor")
        b = np.fft.ifftshift(prob.magnitudes)
        kn, sp = np.fft.ifftshift(prob.known), np.fft.ifftshift(prob.support)
        ofilt = ref._filters("oss", b.shape, 1, 10, 0.9, 1.0)
        z0 = b * np.exp(1j * np.random.default_rng(0).uniform(0, 2 * np.pi, b.shape))
        cstate = {"G": z0, "g": np.fft.ifftn(z0)}

        def numpy_complex_step():
            cstate["G"], cstate["g"], _ = ref.baseline_step("oss", cstate["G"], cstate["g"], b, kn, sp, 0.9, ofilt,
                                                            complex_object=True, phase_range=prange)

        ctx.measure(case, label, "NumPy reference (numpy.fft, float64)", numpy_complex_step, role="peer",
                    repeat=3, min_time=0.0)
    del csol, cplan

    # multi-start throughput
    sizes = [64] if ctx.quick else [256, 512]
    run_counts = [1, 2] if ctx.quick else ([1, 8, 64] if dev.is_cpu else [1, 8, 64, 500])
    for n in sizes:
        prob_n = _problem(n, dev)
        for runs in run_counts:
            sol = _solver(prob_n, runs)
            size = f"{n}x{n} R={runs}"
            ctx.measure("GPS-F multi-start", size, "fastem batched step", lambda: sol.step(0.01), work=runs,
                        work_unit="run-iter")
            p = sol.plan
            ctx.measure("GPS-F multi-start", size, "2 batched transforms (floor)",
                        lambda: (p.forward(p.buffer), p.backward(p.buffer, normalise=False)), role="floor")
            del sol, p
    if dev.is_gpu and not ctx.quick:
        from fastem.phase import retrieve

        prob_p = _problem(512, dev)

        def protocol():
            retrieve(problem=prob_p, algorithm="gps-f", iterations=1000, runs=500, keep=5, seed=0)

        ctx.measure("GPS-F protocol 500x1000", "512x512", "fastem retrieve (keep 5)", protocol, work=500 * 1000,
                    work_unit="run-iter", warmup=1, repeat=1, min_time=0.0)
        ctx.note("GPU launch overhead is amortised by batching the runs (one launch per kernel per "
                 "iteration for all R runs); CUDA graphs are not used")
