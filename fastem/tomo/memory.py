"""Memory a tomography run really allocates, and the machine's available memory.

:func:`estimate_run_bytes` counts every array a reconstruction holds at its peak (the loaded
series, the problem's device copies, the solver's volume and residual, the projector's plans
and buffers, the construction temporaries, the result copies); :func:`check_run_memory` refuses
a run that cannot fit *before* anything large is allocated, with a one-line estimate against
what the device has.

FFT plans are counted as :class:`fastem.fft.FFTPlan` allocates them: a private plan holds its
buffers (with pyFFTW its FFTW objects are planned on them), plus an allowance for FFTW's or
cuFFT's own work area.
"""

from __future__ import annotations

import math
import os


from .. import backend
from ..errors import InputError

__all__ = ["available_bytes", "plan_bytes", "estimate_run_bytes", "check_run_memory", "format_bytes"]

_F32, _C64 = 4, 8
#: bytes on top of the counted arrays: interpreter, compiled kernels, FFTW's own scratch
OVERHEAD = 256 << 20


def format_bytes(n: float) -> str:
    """``1.5 GiB`` style text."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _cgroup_room() -> int | None:
    """Bytes left under a cgroup v2 / v1 memory limit, if one is set."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as fh:
                text = fh.read().strip()
            if text == "max":
                return None
            limit = int(text)
            with open(usage_file) as fh:
                usage = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # "no limit" in cgroup v1
            return None
        return max(0, limit - usage)
    return None


def available_bytes(device=None) -> int:
    """Memory a run may still allocate on ``device`` (bytes).

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (free memory plus reclaimable caches), capped by
    a cgroup memory limit; elsewhere the free physical pages. GPU: the free device memory.
    """
    dev = backend.Device(device)
    if dev.is_gpu:
        with dev.use():
            free, _total = dev.xp.cuda.runtime.memGetInfo()
        return int(free)
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):  # pragma: no cover
            avail = 1 << 34
    room = _cgroup_room()
    return int(avail if room is None else min(avail, room))


def plan_bytes(shape, *, real: bool, device=None) -> int:
    """Bytes one :class:`fastem.fft.FFTPlan` of ``shape`` (single precision) holds.

    ``shape`` is the real-space shape; the last *transformed* axis is taken as the last axis of
    ``shape`` for the half spectrum (as in the tomography plans).
    """
    from ..fft import provider

    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    half = math.prod(shape[:-1]) * (shape[-1] // 2 + 1)
    in_b = n * (_F32 if real else _C64)
    out_b = (half if real else n) * _C64
    prov = provider(device)
    if prov == "pyfftw":  # the plan's buffers (its FFTW objects are planned on them) + FFTW's own scratch
        return (in_b + out_b if real else out_b) + out_b // 8
    if prov == "cufft":  # buffers + cuFFT work area
        return (in_b + out_b) + max(in_b, out_b) if real else 2 * out_b
    return (in_b + out_b) + 2 * out_b if real else 3 * out_b  # scipy: buffers + per-call results


def _bordered(n, rows, cols) -> int:
    from ..kernels.back_project import BORDER

    return n * (rows + 2 * BORDER) * (cols + 2 * BORDER) * _F32


def estimate_run_bytes(volume_shape, projections_shape, *, algorithm: str = "resire", projector: str = "fst",
                       fst_bytes: int = 0, device=None, input_bytes: int | None = None,
                       voxel_steps: bool = False, regularised: bool = False, rfree: bool = False,
                       search: bool = False) -> dict:
    """Peak bytes of one reconstruction, by part.

    Parameters
    ----------
    volume_shape : (nz, ny, nx)
    projections_shape : (n, rows, cols)
    algorithm : {"resire", "sirt", "fbp"}
    projector : {"fst", "linear"}
        RESIRE's projector (SIRT and FBP use ``linear``).
    fst_bytes : int
        What the ``fst`` projector holds (:meth:`FourierSliceProjector.estimate_bytes`).
    device : Device-like
        Where the problem and the solver live (the host copies are counted apart).
    input_bytes : int, optional
        The loaded series on the host (default: float32 projections plus a bool mask).
    voxel_steps : bool
        RESIRE with per-voxel steps (``step_normalisation`` "voxel"): one more volume, plus two
        count volumes while it is built.
    regularised : bool
        The regularised solver (:mod:`fastem.tomo.regularised`: a prior or per-pixel weights):
        FISTA's three more volumes and the weights (and their square roots).
    rfree : bool
        With R-free pixels held out (the automatic strength, the R-free stop): a second solver,
        with its best volume and the held-out mask, built once the first one's volume and FISTA
        vectors are freed (only its ``L_data`` bound is kept).
    search : bool
        The automatic strength's search: its two snapshots (volume and momentum each) and the
        host copy of its result.

    Returns
    -------
    dict
        ``{"device": bytes on the device, "host": bytes on the host, "total": sum (CPU runs),
        "parts": {name: bytes}}``.
    """
    dev = backend.Device(device)
    n, rows, cols = (int(s) for s in projections_shape)
    vol = math.prod(int(s) for s in volume_shape) * _F32
    proj = n * rows * cols * _F32
    bordered = _bordered(n, rows, cols)
    host = {"series": proj + n * rows * cols if input_bytes is None else int(input_bytes),
            # TomoProblem: measured mask (bool) + the float32 data being built, result copies
            "problem temporaries": proj + n * rows * cols, "result": 2 * vol,
            # small arrays, HDF5 chunk cache and write buffers
            "i/o buffers": proj + (1 << 20)}
    parts = {"data + mask": 2 * proj, "volume": vol, "residual": bordered}
    if algorithm == "resire" and projector == "fst":
        parts["fst projector"] = int(fst_bytes)
    else:
        parts["linear projector scratch"] = bordered
    if algorithm == "resire" and voxel_steps:
        parts["resire voxel steps"] = 3 * vol
    if regularised:          # x_prev, y, g; weights and their square roots; host: float64 mask and weights built
        parts["fista vectors"] = 3 * vol
        parts["data weights"] = 2 * proj
        host["weights construction"] = 5 * proj
        if rfree:            # the held-out solver: volume, x_prev, y, g, best volume; weights, roots, held; residual
            parts["r-free solver"] = 5 * vol + 3 * proj + bordered
            # the first solver's volume and FISTA vectors are freed before it is built (prepare_regularised
            # keeps only its L_data bound), so they are not held at the peak beside it
            parts.pop("volume")
            parts.pop("fista vectors")
            host["r-free pixels"] = 3 * proj
            if projector == "fst":   # each solver builds its own Fourier-slice projector
                parts["r-free solver fst projector"] = int(fst_bytes)
        if search:
            parts["search snapshots"] = 4 * vol
            host["search volume"] = vol
    if algorithm == "sirt":  # row weights + column weights; construction: ones volume + 3 projection temporaries
        parts["sirt weights"] = proj + vol
        parts["sirt temporaries"] = vol + 3 * proj
    if algorithm == "fbp":
        from scipy.fft import next_fast_len

        n_pad = next_fast_len(2 * cols)
        n_pad += n_pad % 2
        parts.pop("residual")
        parts["fbp filter"] = n * rows * (2 * n_pad * _F32 + 2 * (n_pad // 2 + 1) * _C64) + 2 * proj
        parts["fbp r-factor"] = 2 * bordered
    on_device = sum(parts.values())
    on_host = sum(host.values())
    all_parts = {**parts, **{f"host {k}": v for k, v in host.items()}}
    total = on_device + on_host if dev.is_cpu else on_host
    return {"device": int(on_device), "host": int(on_host), "total": int(total + OVERHEAD), "parts": all_parts}


def check_run_memory(estimate: dict, device=None, *, what: str = "the reconstruction", hint: str = "") -> None:
    """Raise a one-line :class:`InputError` when ``estimate`` does not fit the available memory."""
    dev = backend.Device(device)
    host_avail = available_bytes("cpu")
    need_host = estimate["total"] if dev.is_cpu else estimate["host"] + OVERHEAD
    if need_host > host_avail:
        raise InputError(f"{what} needs about {format_bytes(need_host)} of memory but {format_bytes(host_avail)} "
                         f"are available{hint}")
    if dev.is_gpu:
        gpu_avail = available_bytes(dev)
        if estimate["device"] > gpu_avail:
            raise InputError(f"{what} needs about {format_bytes(estimate['device'])} on {dev} but "
                             f"{format_bytes(gpu_avail)} are free{hint}")


