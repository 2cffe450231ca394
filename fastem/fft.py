"""FFT provider: pyFFTW on the CPU, cuFFT (through CuPy) on the GPU, SciPy as a fallback.

Two levels:

* :class:`FFTPlan` -- forward and backward transforms of one (shape, dtype, axes, real/complex)
  on one device, for hot loops: it executes in place or out of place without allocating and
  leaves normalisation to the caller when asked (kernels fold the ``1/N`` into their own pass).

  - :func:`new_plan` (or ``FFTPlan(...)``) builds a **private** plan: it owns aligned work
    buffers (:attr:`FFTPlan.buffer`) that nobody else touches. Every solver or projector that
    computes in a plan's buffers builds its own (with FFTW wisdom, planning a geometry seen
    before is instant).
  - :func:`get_plan` returns the **shared** plan of a geometry, memoised per key (asking twice
    costs a dictionary lookup). Shared plans cache planning work, never work arrays: pass your
    own input and output arrays. Their execution is thread-safe (one lock per plan). Using a
    shared plan's ``buffer`` as a work array is deprecated (:class:`DeprecationWarning`): any
    other caller of the same geometry may use it too.
* NumPy-compatible functions :func:`fftn`, :func:`ifftn`, :func:`rfftn`, :func:`irfftn`,
  :func:`fft2`, :func:`ifft2`, :func:`fft`, :func:`ifft`, :func:`rfft`, :func:`irfft`
  (``norm="backward"|"ortho"|"forward"``, optional ``out=``) that route through the shared
  plans and accept NumPy or CuPy arrays; they may be called from several threads at once.

Conventions: transforms run over ``axes`` (default: all axes for the ``*n`` functions, the last
one or two for the 1D/2D ones); any other (leading) axes are batched. Zero frequency at index 0
(no shifts). The forward transform is unnormalised and the backward one carries ``1/N`` under
``norm="backward"``, exactly as in ``numpy.fft``. Bad arguments raise
:class:`fastem.errors.InputError` naming the parameter.

CPU details: plans are built with ``FFTW_MEASURE`` (``$FASTEM_FFT_PLANNER`` overrides; planning of one
transform is capped at ``$FASTEM_FFT_PLANNING_TIMELIMIT`` = 5 s) on
SIMD-aligned buffers with ``threads = fastem.config.settings.threads`` (all available cores by
default). FFTW wisdom is imported from and saved to ``<cache_dir>/fftw-wisdom-<arch>.bin``
(``$FASTEM_CACHE_DIR``, default ``~/.cache/fastem``), so the next run plans instantly. The file
holds the plain text pyFFTW exports behind a small header (lengths and a SHA-256 digest); it is
validated before import and nothing in it is ever executed or unpickled (old ``.pickle`` files
are ignored). A cache folder or wisdom file that is not owned by the current user, or that group
or others can write, is ignored with a one-line :class:`UntrustedCacheWarning`. Without pyFFTW,
SciPy's ``scipy.fft`` (with ``workers=threads``) is used; it allocates its outputs.
``FFTW_MEASURE`` chooses plans by timing, so another process may choose others (and round
differently): :func:`export_wisdom` and :func:`adopt_wisdom` hand one process's plans to another
(the phase multi-start's Dask tasks carry the client's; docs/distributed.md, "FFT plans").
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import platform
import re
import stat
import threading
import warnings
from numbers import Integral
from typing import Any, Sequence

import numpy as np

from . import backend
from .config import cache_dir, settings
from .errors import InputError
from ._lru import LRUCache
from .interop import accepts_torch

log = logging.getLogger(__name__)

__all__ = [
    "FFTPlan",
    "new_plan",
    "get_plan",
    "clear_plan_cache",
    "empty_aligned",
    "fft",
    "ifft",
    "fft2",
    "ifft2",
    "fftn",
    "ifftn",
    "rfft",
    "irfft",
    "rfftn",
    "irfftn",
    "fftshift",
    "ifftshift",
    "provider",
    "save_wisdom",
    "export_wisdom",
    "adopt_wisdom",
    "UntrustedCacheWarning",
]

_pyfftw = backend.optional_module("pyfftw")
_PLAN_CACHE_SIZE = int(os.environ.get("FASTEM_FFT_PLAN_CACHE", "32"))
_plan_cache = LRUCache(max(1, _PLAN_CACHE_SIZE))
#: FFTW's planner is not thread-safe: every plan construction and wisdom import/export holds this
_planner_lock = threading.RLock()
_wisdom_state = {"loaded": False, "dirty": False, "warned": set()}


class UntrustedCacheWarning(UserWarning):
    """The FFTW wisdom cache (folder or file) could be written by someone else: it is not used."""


def provider(device: Any = None) -> str:
    """Name of the FFT library used on ``device``: ``'pyfftw'``, ``'scipy'`` or ``'cufft'``."""
    dev = backend.Device(device)
    if dev.is_gpu:
        return "cufft"
    return "pyfftw" if _pyfftw is not None else "scipy"


# --------------------------------------------------------------------------------------------
# wisdom: plain bytes behind a validated header, never pickle
# --------------------------------------------------------------------------------------------
_WISDOM_MAGIC = b"FASTEM-FFTW-WISDOM 1"
_WISDOM_MAX_BYTES = 64 << 20
_WISDOM_TMP = re.compile(r"^fftw-wisdom-.+\.(\d+)\.tmp$")


def _wisdom_path():
    return cache_dir(create=False) / f"fftw-wisdom-{platform.machine()}.bin"


def _warn_untrusted(path, why: str) -> None:
    key = (str(path), why)
    if key in _wisdom_state["warned"]:
        return
    _wisdom_state["warned"].add(key)
    warnings.warn(f"FFTW wisdom cache {path} {why}: not used (make it yours and 'chmod go-w' it, or set "
                  f"FASTEM_CACHE_DIR to a private folder)", UntrustedCacheWarning, stacklevel=4)


def _untrusted_reason(st: os.stat_result) -> str | None:
    """Why a cache entry with this ``stat`` must not be trusted (``None``: it may be)."""
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "others" if st.st_mode & stat.S_IWOTH else "its group"
        return f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _trusted_dir(folder) -> bool:
    """Whether the cache folder exists and is private enough to read wisdom from / write it to."""
    try:
        st = os.stat(folder)
    except OSError:
        return False
    why = _untrusted_reason(st)
    if why is not None:
        _warn_untrusted(folder, why)
        return False
    return True


def encode_wisdom(parts) -> bytes:
    """The wisdom file's bytes for ``pyfftw.export_wisdom()`` output (a tuple of 3 ``bytes``)."""
    parts = tuple(bytes(p) for p in parts)
    digest = hashlib.sha256(b"".join(parts)).hexdigest().encode()
    header = b" ".join([_WISDOM_MAGIC] + [str(len(p)).encode() for p in parts] + [digest])
    return header + b"\n" + b"".join(parts)


def decode_wisdom(data: bytes) -> tuple:
    """The 3 wisdom strings of a wisdom file's bytes; ``ValueError`` for anything malformed."""
    head, sep, rest = data.partition(b"\n")
    fields = head.split(b" ")
    if not sep or len(fields) != 6 or b" ".join(fields[:2]) != _WISDOM_MAGIC:
        raise ValueError("not a fastem FFTW wisdom file")
    try:
        lengths = [int(f) for f in fields[2:5]]
    except ValueError:
        raise ValueError("bad lengths in the header") from None
    if any(n < 0 for n in lengths) or sum(lengths) != len(rest):
        raise ValueError(f"truncated or padded: header says {sum(lengths)} bytes, file holds {len(rest)}")
    if hashlib.sha256(rest).hexdigest().encode() != fields[5]:
        raise ValueError("checksum mismatch")
    parts, pos = [], 0
    for n in lengths:
        part = rest[pos:pos + n]
        pos += n
        if part and not (part.startswith(b"(fftw") and part.rstrip().endswith(b")") and part.isascii()):
            raise ValueError("a part is not FFTW wisdom text")
        parts.append(part)
    return tuple(parts)


def _read_private_file(path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file we own that only we can write (else ``None``)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symbolic link (ELOOP), unreadable, ...
        log.debug("could not open FFTW wisdom %s: %s", path, exc)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        why = _untrusted_reason(st)
        if why is not None:
            _warn_untrusted(path, why)
            return None
        if st.st_size > _WISDOM_MAX_BYTES:
            log.debug("FFTW wisdom %s is %d bytes: ignored", path, st.st_size)
            return None
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            return fh.read(_WISDOM_MAX_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)


def _load_wisdom() -> None:
    with _planner_lock:
        if _wisdom_state["loaded"] or _pyfftw is None:
            return
        _wisdom_state["loaded"] = True
        path = _wisdom_path()
        if not _trusted_dir(path.parent):
            return
        data = _read_private_file(path)
        if data is None:
            return
        try:
            _pyfftw.import_wisdom(decode_wisdom(data))
            log.debug("imported FFTW wisdom from %s", path)
        except Exception as exc:  # corrupt or foreign wisdom: ignore, it will be rebuilt
            log.debug("ignored FFTW wisdom %s: %s", path, exc)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_stale_temporaries(folder) -> None:
    """Remove ``fftw-wisdom-*.<pid>.tmp`` files of dead processes (also those of the former ``.pickle`` format)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = _WISDOM_TMP.match(name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(folder, name))
                log.debug("removed stale FFTW wisdom temporary %s", name)
            except OSError:
                pass


def save_wisdom() -> None:
    """Write the accumulated FFTW wisdom to the user cache (done automatically at exit).

    The folder is created private (mode 0700); an untrusted folder is left alone. A failed write
    (disk full, read-only home) leaves no temporary behind; planning then simply repeats next time.
    """
    if _pyfftw is None or not _wisdom_state["dirty"]:
        return
    path = _wisdom_path()
    folder = path.parent
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        log.debug("could not create the FFTW wisdom folder %s: %s", folder, exc)
        return
    if not _trusted_dir(folder):
        return
    _remove_stale_temporaries(folder)
    with _planner_lock:
        data = encode_wisdom(_pyfftw.export_wisdom())
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        _wisdom_state["dirty"] = False
    except OSError as exc:  # read-only home, disk full, ...
        log.debug("could not save FFTW wisdom to %s: %s", path, exc)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


atexit.register(save_wisdom)

_adopted = {"digest": None}


def export_wisdom() -> bytes | None:
    """This process's FFTW wisdom (every plan it has measured or imported), as bytes to hand to
    :func:`adopt_wisdom` in another process; ``None`` without pyFFTW.

    ``FFTW_MEASURE`` times candidate algorithms, so two processes planning the same transform
    may pick different ones, whose results differ in the last bits (and an iterative solver
    amplifies that). A Dask client that plans a job's transforms and ships its wisdom to the
    workers makes every process run the same plans, as FFTW's own MPI interface does with
    ``fftw_mpi_broadcast_wisdom``.
    """
    if _pyfftw is None:
        return None
    _load_wisdom()
    with _planner_lock:
        return encode_wisdom(_pyfftw.export_wisdom())


def adopt_wisdom(data: bytes | None) -> bool:
    """Make ``data`` (from :func:`export_wisdom` in another process) this process's only FFTW
    wisdom, so that plans of the geometries it covers are the exporter's exactly.

    The process's own wisdom is forgotten first (FFTW would otherwise keep a plan it measured
    itself), after the user cache has been read, so that nothing read later overrides it.
    Plans are built from wisdom: build them after this call (plans built before keep their
    algorithm; the shared plans of :func:`get_plan` are dropped). Adopting the same bytes again
    does nothing. Returns whether wisdom was imported (``False`` for ``None`` or without pyFFTW).
    Raises ``ValueError`` for bytes that are not a wisdom export; wisdom FFTW refuses (another
    FFTW build) is a ``RuntimeWarning``, and the process then plans for itself.
    """
    if data is None or _pyfftw is None:
        return False
    digest = hashlib.sha256(bytes(data)).hexdigest()
    with _planner_lock:
        if _adopted["digest"] == digest:
            return True
        parts = decode_wisdom(bytes(data))
        _load_wisdom()
        _pyfftw.forget_wisdom()
        if not all(_pyfftw.import_wisdom(parts)):   # another FFTW build: plan here instead
            warnings.warn("FFTW refused the wisdom handed to this process (another FFTW build?): its transforms "
                          "are planned here, and their last bits may differ from the exporter's", RuntimeWarning)
            _adopted["digest"] = digest
            return False
        _plan_cache.clear()
        _adopted["digest"] = digest
        _wisdom_state["dirty"] = True
    return True


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def empty_aligned(shape, dtype, device: Any = None):
    """An uninitialised array on ``device``; SIMD-aligned on the CPU when pyFFTW is present."""
    dev = backend.Device(device)
    if dev.is_gpu:
        with dev.use():
            return dev.xp.empty(shape, dtype)
    if _pyfftw is not None:
        return _pyfftw.empty_aligned(shape, dtype=dtype)
    return np.empty(shape, dtype)


def _check_shape(shape, where: str = "shape") -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise InputError(f"{where} must be a sequence of lengths >= 1, got {shape!r}") from None
    if not dims or not all(isinstance(d, Integral) and not isinstance(d, bool) for d in dims):
        raise InputError(f"{where} must be a non-empty sequence of integer lengths, got {shape!r}")
    dims = tuple(int(d) for d in dims)
    if min(dims) < 1:
        raise InputError(f"{where} must have every length >= 1, got {dims}")
    return dims


def _normalise_axes(ndim: int, axes, where: str = "axes") -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, Integral) and not isinstance(axes, bool):
        axes = (axes,)
    try:
        axes = tuple(axes)
    except TypeError:
        raise InputError(f"{where} must be an int or a sequence of ints, got {axes!r}") from None
    if not axes or not all(isinstance(a, Integral) and not isinstance(a, bool) for a in axes):
        raise InputError(f"{where} must be a non-empty sequence of ints, got {axes!r}")
    bad = [int(a) for a in axes if not -ndim <= int(a) < ndim]
    if bad:
        raise InputError(f"{where} {bad[0]} is out of range for a {ndim}-D array")
    out = tuple(sorted(int(a) % ndim for a in axes))
    if len(set(out)) != len(out):
        raise InputError(f"{where} has a repeated axis: {tuple(int(a) for a in axes)}")
    return out


def _check_dtype(dtype, where: str = "dtype") -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InputError(f"{where} must be a float or complex dtype, got {dtype!r}") from None
    if dt.kind not in "fc":
        raise InputError(f"{where} must be a float or complex dtype, got {dt}")
    return dt


def _complex_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.complex64, np.float16):
        return np.dtype(np.complex64)
    return np.dtype(np.complex128)


def _real_dtype(dtype) -> np.dtype:
    return np.dtype(np.float32) if _complex_dtype(dtype) == np.complex64 else np.dtype(np.float64)


def _is_aligned(a) -> bool:
    return _pyfftw is not None and _pyfftw.is_byte_aligned(a, _pyfftw.simd_alignment)


_SHARED_BUFFER_MESSAGE = ("the buffers of a shared plan from fastem.fft.get_plan() are not yours: any other caller "
                          "of the same geometry may use them at any time (deprecated); build a private plan with "
                          "fastem.fft.new_plan(...) to compute in its buffer, or pass your own arrays")


# --------------------------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------------------------
_spin_warned = False


def warn_spinning_openmp() -> bool:
    """Warn once per process when ``OMP_WAIT_POLICY`` is unset and FFTW will run threaded.

    Every iterative solver alternates multi-threaded FFTW transforms with Numba's parallel
    kernels; Numba's default OpenMP layer then leaves its idle workers spin-waiting, and on a
    small machine they starve FFTW's threads (``fastem.config.use_passive_openmp``: measured
    6.6 s spinning vs 0.016 s passive for 300 transform + kernel pairs). ``import fastem``
    changes nothing process-wide (issue 18) and the CLI asks for the passive policy itself, so
    this tells a library user what to do. Returns True when it warned.
    """
    global _spin_warned
    if _spin_warned or "OMP_WAIT_POLICY" in os.environ:
        return False
    _spin_warned = True
    from .errors import PerformanceWarning

    warnings.warn("OMP_WAIT_POLICY is unset: Numba's OpenMP workers spin between parallel regions and can make "
                  "fastem's FFT-based solvers many times slower on few cores; call "
                  "fastem.config.use_passive_openmp() before the first solver runs (the fastem CLI does) or set "
                  "OMP_WAIT_POLICY=PASSIVE (with GOMP_SPINCOUNT=1000, as the CLI)", PerformanceWarning, stacklevel=4)
    return True


class FFTPlan:
    """Forward and backward transforms of one geometry on one device.

    Built directly (or by :func:`new_plan`) a plan is **private**: its buffers belong to its
    owner. :func:`get_plan` returns shared plans instead (see the module docstring).

    Parameters
    ----------
    shape : tuple of int
        Shape of the *real-space* array (for ``real=True`` the real input; the spectrum then has
        ``shape[axes[-1]] // 2 + 1`` entries along the last transformed axis).
    dtype : dtype
        Precision: ``complex64``/``float32`` -> single, ``complex128``/``float64`` -> double.
    axes : sequence of int, optional
        Transformed axes (default all); the remaining axes are batched.
    real : bool
        Real-to-complex forward / complex-to-real backward transforms.
    device : Device-like
        ``cpu`` (pyFFTW or SciPy) or ``cuda:N`` (cuFFT).
    threads : int, optional
        FFTW threads (default ``fastem.config.settings.threads``); e.g. to plan, in a Dask
        client, the transforms its workers will run with their own thread count.

    Attributes
    ----------
    in_shape, out_shape : tuple
        Real-space and Fourier-space shapes.
    in_dtype, out_dtype : numpy.dtype
    buffer : ndarray
        An aligned Fourier-space work array of ``out_shape`` owned by the plan; ``forward()`` and
        ``backward()`` with no arguments transform it in place (complex plans only). Private
        plans only: on a shared plan it is deprecated (:class:`DeprecationWarning`).
    n : int
        Number of points per transform (the product of the transformed lengths).

    Notes
    -----
    Execution never allocates on the pyFFTW and cuFFT paths when the arrays passed are
    C-contiguous and of the plan's dtype (and, on the CPU, SIMD-aligned: use
    :func:`empty_aligned` or the plan's buffers; unaligned arrays get a separate
    ``FFTW_UNALIGNED`` plan, still without copies). Complex-to-real transforms destroy their
    input in FFTW and cuFFT; :meth:`backward` copies it into an internal buffer first unless
    ``overwrite_input=True``. Every execution holds the plan's lock, so one plan may be used
    from several threads (they take turns); the FFTW objects are planned on the plan's own
    buffers, so a plan holds its buffers and nothing else.
    """

    def __init__(self, shape: Sequence[int], dtype, axes=None, real: bool = False, device: Any = None,
                 threads: int | None = None):
        self.device = backend.Device(device)
        self.in_shape = _check_shape(shape)
        self.axes = _normalise_axes(len(self.in_shape), axes)
        self.real = bool(real)
        cdt = _complex_dtype(_check_dtype(dtype))
        self.out_dtype = cdt
        self.in_dtype = _real_dtype(dtype) if real else cdt
        out_shape = list(self.in_shape)
        if real:
            out_shape[self.axes[-1]] = self.in_shape[self.axes[-1]] // 2 + 1
        self.out_shape = tuple(out_shape)
        self.n = int(np.prod([self.in_shape[a] for a in self.axes]))
        if threads is not None and (not isinstance(threads, Integral) or isinstance(threads, bool) or threads < 1):
            raise InputError(f"threads must be a positive integer, got {threads!r}")
        self.threads = settings.threads if threads is None else int(threads)
        self.provider = provider(self.device)
        self._xp = self.device.xp
        self._shared = False
        self._lock = threading.RLock()
        self._buffer = empty_aligned(self.out_shape, self.out_dtype, self.device)
        self._real_buffer = empty_aligned(self.in_shape, self.in_dtype, self.device) if real else None
        self._c2r_scratch = None
        self._fftw: dict = {}
        self._cufft = None
        if self.provider == "pyfftw":
            if self.threads > 1:
                warn_spinning_openmp()
            _load_wisdom()
            # build the common plans now, on the plan's own (still empty) buffers, so that
            # planning cost is paid once, up front, and no planning arrays are kept
            if real:
                self._get_fftw("r2c", inplace=False, aligned=True, on_own_buffers=True)
                self._get_fftw("c2r", inplace=False, aligned=True, on_own_buffers=True)
            else:
                self._get_fftw("fwd", inplace=True, aligned=True, on_own_buffers=True)
                self._get_fftw("bwd", inplace=True, aligned=True, on_own_buffers=True)

    # ---- buffers -----------------------------------------------------------------------------
    @property
    def buffer(self):
        """The plan's Fourier-space work array (private plans; deprecated on shared plans)."""
        return self._work(self._buffer)

    @property
    def shared(self) -> bool:
        """True for the cached plans of :func:`get_plan` (whose buffers are not the caller's)."""
        return self._shared

    def _work(self, array):
        if self._shared:
            warnings.warn(_SHARED_BUFFER_MESSAGE, DeprecationWarning, stacklevel=3)
        return array

    def _parking(self, kind: str):
        """Arrays of the plan an FFTW object of ``kind`` is parked on between executions."""
        if kind in ("fwd", "bwd"):
            return self._buffer, self._buffer
        if kind == "r2c":
            return self._real_buffer, self._buffer
        return self._buffer, self._real_buffer

    # ---- pyFFTW ------------------------------------------------------------------------------
    def _get_fftw(self, kind: str, inplace: bool, aligned: bool, on_own_buffers: bool = False):
        """The FFTW object of ``kind`` (built on first use; ``on_own_buffers``: plan it on the
        plan's buffers, only while they are still empty, i.e. in the constructor)."""
        key = (kind, inplace, aligned)
        obj = self._fftw.get(key)
        if obj is not None:
            return obj
        flags = [settings.fft_planner]
        if not aligned:
            flags.append("FFTW_UNALIGNED")
        park_in, park_out = self._parking(kind)
        if on_own_buffers:
            a, b = park_in, park_out  # FFTW_MEASURE scribbles on them
        elif kind in ("fwd", "bwd"):
            a = _pyfftw.empty_aligned(self.in_shape, dtype=self.out_dtype)
            b = a if inplace else _pyfftw.empty_aligned(self.in_shape, dtype=self.out_dtype)
        elif kind == "r2c":
            a = _pyfftw.empty_aligned(self.in_shape, dtype=self.in_dtype)
            b = _pyfftw.empty_aligned(self.out_shape, dtype=self.out_dtype)
        else:  # c2r
            a = _pyfftw.empty_aligned(self.out_shape, dtype=self.out_dtype)
            b = _pyfftw.empty_aligned(self.in_shape, dtype=self.in_dtype)
        direction = "FFTW_FORWARD" if kind in ("fwd", "r2c") else "FFTW_BACKWARD"
        if kind == "c2r":
            flags.append("FFTW_DESTROY_INPUT")
        with _planner_lock:
            obj = _pyfftw.FFTW(a, b, axes=self.axes, direction=direction, flags=tuple(flags), threads=self.threads,
                               planning_timelimit=settings.fft_planning_timelimit)
            _wisdom_state["dirty"] = True
        if a is not park_in or b is not park_out:
            obj.update_arrays(park_in, park_out)  # park on the plan's buffers: the planning arrays are freed
        self._fftw[key] = obj
        return obj

    def _run_fftw(self, kind: str, x, out) -> None:
        inplace = x is out or (x.ctypes.data == out.ctypes.data)
        aligned = _is_aligned(x) and _is_aligned(out)
        obj = self._get_fftw(kind, inplace, aligned)
        keep_in, keep_out = obj.input_array, obj.output_array
        obj.update_arrays(x, out)
        try:
            obj.execute()
        finally:
            # do not keep the caller's arrays alive through the plan
            obj.update_arrays(keep_in, keep_out)

    # ---- cuFFT ---------------------------------------------------------------------------------
    def _get_cufft(self):
        if self._cufft is None:
            import cupyx.scipy.fft as cufft_mod

            with self.device.use():
                if self.real:
                    fwd = cufft_mod.get_fft_plan(self._real_buffer, axes=self.axes, value_type="R2C")
                    bwd = cufft_mod.get_fft_plan(self._buffer, shape=[self.in_shape[a] for a in self.axes],
                                                 axes=self.axes, value_type="C2R")
                else:
                    fwd = bwd = cufft_mod.get_fft_plan(self._buffer, axes=self.axes, value_type="C2C")
            self._cufft = (fwd, bwd)
        return self._cufft

    # ---- checks ----------------------------------------------------------------------------
    def _check(self, a, shape, dtype, what: str):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise InputError(f"FFT plan for {shape} {dtype}: {what} must be an array, got {type(a).__name__}")
        if tuple(a.shape) != shape or a.dtype != dtype:
            raise InputError(f"FFT plan for {shape} {dtype}: {what} has shape {tuple(a.shape)} and dtype {a.dtype}")
        if backend.get_device(a) != self.device:
            raise InputError(f"FFT plan on {self.device}: {what} lives on {backend.get_device(a)}")

    def _contig(self, a):
        return a if a.flags.c_contiguous else self._xp.ascontiguousarray(a)

    # ---- public ----------------------------------------------------------------------------
    def forward(self, x=None, out=None):
        """Unnormalised forward transform ``X[k] = sum_n x[n] exp(-2 pi i k.n / N)``.

        ``x`` defaults to :attr:`buffer` (complex plans), ``out`` to ``x`` for complex plans (in
        place) and to :attr:`buffer` for real plans. Returns ``out``. On a shared plan pass
        both arrays (the defaults are the shared buffers: deprecated).
        """
        if self.real:
            if x is None:
                x = self._work(self._real_buffer)
            self._check(x, self.in_shape, self.in_dtype, "input")
            out = self._work(self._buffer) if out is None else out
        else:
            x = self._work(self._buffer) if x is None else x
            self._check(x, self.in_shape, self.out_dtype, "input")
            out = x if out is None else out
        self._check(out, self.out_shape, self.out_dtype, "output")
        with self._lock:
            x = self._contig(x)
            if self.provider == "pyfftw":
                if not out.flags.c_contiguous:
                    raise InputError("FFT output array must be C-contiguous")
                self._run_fftw("r2c" if self.real else "fwd", x, out)
            elif self.provider == "cufft":
                from cupy.cuda import cufft

                with self.device.use():
                    self._get_cufft()[0].fft(x, out, cufft.CUFFT_FORWARD)
            else:
                import scipy.fft as sfft

                res = (sfft.rfftn if self.real else sfft.fftn)(x, axes=self.axes, workers=self.threads)
                out[...] = res
        return out

    def backward(self, x=None, out=None, normalise: bool = True, overwrite_input: bool = False):
        """Backward transform ``x[n] = c * sum_k X[k] exp(+2 pi i k.n / N)``, ``c = 1/N`` if ``normalise``.

        ``x`` defaults to :attr:`buffer`; ``out`` to ``x`` for complex plans (in place) and to an
        internal real buffer for real plans. Returns ``out``. On a shared plan pass both arrays
        (the defaults are the shared buffers: deprecated).
        """
        x = self._work(self._buffer) if x is None else x
        self._check(x, self.out_shape, self.out_dtype, "input")
        if self.real:
            out = self._work(self._real_buffer) if out is None else out
            self._check(out, self.in_shape, self.in_dtype, "output")
        else:
            out = x if out is None else out
            self._check(out, self.in_shape, self.out_dtype, "output")
        with self._lock:
            x = self._contig(x)
            if self.real and not overwrite_input and self.provider != "scipy":
                if self._c2r_scratch is None:
                    self._c2r_scratch = empty_aligned(self.out_shape, self.out_dtype, self.device)
                self._c2r_scratch[...] = x
                x = self._c2r_scratch
            if self.provider == "pyfftw":
                if not out.flags.c_contiguous:
                    raise InputError("FFT output array must be C-contiguous")
                self._run_fftw("c2r" if self.real else "bwd", x, out)
            elif self.provider == "cufft":
                from cupy.cuda import cufft

                with self.device.use():
                    self._get_cufft()[1].fft(x, out, cufft.CUFFT_INVERSE)
            else:
                import scipy.fft as sfft

                if self.real:
                    res = sfft.irfftn(x, s=[self.in_shape[a] for a in self.axes], axes=self.axes,
                                      workers=self.threads, norm="forward")
                else:
                    res = sfft.ifftn(x, axes=self.axes, workers=self.threads, norm="forward")
                out[...] = res
        if normalise:
            self._xp.multiply(out, out.real.dtype.type(1.0 / self.n), out=out)
        return out

    def __repr__(self) -> str:
        kind = "real" if self.real else "complex"
        return (f"FFTPlan({kind}, shape={self.in_shape}, axes={self.axes}, dtype={self.out_dtype}, "
                f"device={self.device}, provider={self.provider}, threads={self.threads}"
                f"{', shared' if self._shared else ''})")


def new_plan(shape: Sequence[int], dtype, axes=None, real: bool = False, device: Any = None,
             threads: int | None = None) -> FFTPlan:
    """A private :class:`FFTPlan` (not cached): its :attr:`~FFTPlan.buffer` is yours to compute in.

    Use it wherever a plan's buffers serve as work arrays (a solver, a projector, a benchmark);
    with FFTW wisdom (in memory after the first plan of a geometry, on disk across runs) the
    planning is cheap. Parameters as :class:`FFTPlan`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastem import fft
    >>> plan = fft.new_plan((64, 64), np.complex64)
    >>> plan.buffer[...] = 1.0
    >>> spectrum = plan.forward()          # in place, in the plan's own buffer
    >>> image = plan.backward()            # back, with the 1/N of the inverse
    """
    return FFTPlan(shape, dtype, axes=axes, real=real, device=device, threads=threads)


def get_plan(shape: Sequence[int], dtype, axes=None, real: bool = False, device: Any = None) -> FFTPlan:
    """The shared, cached :class:`FFTPlan` for this geometry (built on first use).

    Shared plans cache planning work, not work arrays: pass your own arrays to
    :meth:`~FFTPlan.forward` / :meth:`~FFTPlan.backward` (thread-safe); for a plan whose
    buffer you compute in, use :func:`new_plan`. The cache key includes the device and the
    current thread count; the least recently used plans are dropped beyond
    ``$FASTEM_FFT_PLAN_CACHE`` (default 32) entries.
    """
    dev = backend.Device(device)
    shape = _check_shape(shape)
    ax = _normalise_axes(len(shape), axes)
    key = (shape, _complex_dtype(_check_dtype(dtype)).str, ax, bool(real), dev.id, settings.threads,
           settings.fft_planner)
    def mark_shared(plan):
        plan._shared = True

    # one shared plan per key, even when two threads plan the same geometry at once
    return _plan_cache.get_or_build(key, lambda: FFTPlan(shape, dtype, ax, real=real, device=dev),
                                    on_store=mark_shared)


def clear_plan_cache() -> None:
    """Drop every cached plan (and its buffers)."""
    _plan_cache.clear()


# --------------------------------------------------------------------------------------------
# NumPy-style functions
# --------------------------------------------------------------------------------------------
def _norm_factors(norm: str | None, n: int) -> tuple[float, float]:
    """Scale applied to (forward, backward) on top of the unnormalised transforms."""
    if norm in (None, "backward"):
        return 1.0, 1.0 / n
    if norm == "ortho":
        return 1.0 / np.sqrt(n), 1.0 / np.sqrt(n)
    if norm == "forward":
        return 1.0 / n, 1.0
    raise InputError(f"norm must be 'backward', 'ortho' or 'forward', got {norm!r}")


def _scale(xp, a, s: float):
    if s != 1.0:
        xp.multiply(a, a.real.dtype.type(s), out=a)
    return a


def _as_input(x, func: str):
    """``(xp, x)`` for an array argument ``x`` of ``func`` (NumPy or CuPy), validated."""
    from .io.validate import as_numeric_array

    xp = backend.get_array_module(x)
    x = as_numeric_array(x, f"{func}: x", xp=xp)
    if x.ndim == 0:
        raise InputError(f"{func}: x must have at least one dimension, got a scalar")
    if x.size == 0:
        raise InputError(f"{func}: x is empty (shape {tuple(x.shape)})")
    return xp, x


def _check_out(out, plan: FFTPlan, shape, dtype, func: str):
    if out is None:
        return empty_aligned(shape, dtype, plan.device)
    if not hasattr(out, "shape") or tuple(out.shape) != tuple(shape) or out.dtype != dtype:
        got = f"shape {tuple(out.shape)} dtype {out.dtype}" if hasattr(out, "shape") else type(out).__name__
        raise InputError(f"{func}: out must be a {dtype} array of shape {tuple(shape)}, got {got}")
    return out


def _c2c(x, axes, norm, out, inverse: bool, func: str = "fftn"):
    xp, x = _as_input(x, func)
    _norm_factors(norm, 1)
    dtype = _complex_dtype(x.dtype)
    if x.dtype != dtype:
        x = x.astype(dtype)
    plan = get_plan(x.shape, dtype, axes, real=False, device=backend.get_device(x))
    out = _check_out(out, plan, x.shape, dtype, func)
    fs, bs = _norm_factors(norm, plan.n)
    if inverse:
        plan.backward(x, out, normalise=False)
        return _scale(xp, out, bs)
    plan.forward(x, out)
    return _scale(xp, out, fs)


@accepts_torch
def fftn(x, axes=None, norm: str | None = None, out=None):
    """N-D complex FFT over ``axes`` (default all), other axes batched. Like ``numpy.fft.fftn``."""
    return _c2c(x, axes, norm, out, inverse=False, func="fftn")


@accepts_torch
def ifftn(x, axes=None, norm: str | None = None, out=None):
    """N-D inverse complex FFT over ``axes`` (default all). Like ``numpy.fft.ifftn``."""
    return _c2c(x, axes, norm, out, inverse=True, func="ifftn")


@accepts_torch
def fft2(x, axes=(-2, -1), norm: str | None = None, out=None):
    """2D complex FFT over the last two axes (leading axes batched)."""
    return _c2c(x, axes, norm, out, inverse=False, func="fft2")


@accepts_torch
def ifft2(x, axes=(-2, -1), norm: str | None = None, out=None):
    """2D inverse complex FFT over the last two axes (leading axes batched)."""
    return _c2c(x, axes, norm, out, inverse=True, func="ifft2")


@accepts_torch
def fft(x, axis: int = -1, norm: str | None = None, out=None):
    """1D complex FFT along ``axis`` (other axes batched)."""
    return _c2c(x, (axis,), norm, out, inverse=False, func="fft")


@accepts_torch
def ifft(x, axis: int = -1, norm: str | None = None, out=None):
    """1D inverse complex FFT along ``axis`` (other axes batched)."""
    return _c2c(x, (axis,), norm, out, inverse=True, func="ifft")


@accepts_torch
def rfftn(x, axes=None, norm: str | None = None, out=None):
    """N-D real-to-complex FFT over ``axes`` (the last one halved). Like ``numpy.fft.rfftn``."""
    xp, x = _as_input(x, "rfftn")
    _norm_factors(norm, 1)
    if x.dtype.kind == "c":
        raise InputError(f"rfftn: x must be real, got {x.dtype} (use fftn for complex data)")
    rdt = _real_dtype(x.dtype)
    if x.dtype != rdt:
        x = x.astype(rdt)
    plan = get_plan(x.shape, rdt, axes, real=True, device=backend.get_device(x))
    out = _check_out(out, plan, plan.out_shape, plan.out_dtype, "rfftn")
    plan.forward(x, out)
    return _scale(xp, out, _norm_factors(norm, plan.n)[0])


@accepts_torch
def irfftn(x, s=None, axes=None, norm: str | None = None, out=None):
    """N-D complex-to-real inverse FFT; ``s`` gives the real lengths along ``axes``.

    Like ``numpy.fft.irfftn`` with the last transformed length defaulting to
    ``2 * (m - 1)``. The input is not modified.
    """
    xp, x = _as_input(x, "irfftn")
    _norm_factors(norm, 1)
    cdt = _complex_dtype(x.dtype)
    if x.dtype != cdt:
        x = x.astype(cdt)
    ax = _normalise_axes(x.ndim, axes)
    shape = list(x.shape)
    if s is None:
        shape[ax[-1]] = 2 * (x.shape[ax[-1]] - 1)
        if shape[ax[-1]] < 1:
            raise InputError(f"irfftn: x has 1 coefficient along axis {ax[-1]}; give the output length s (or n)")
    else:
        s = _check_shape(s, "s")
        if len(s) != len(ax):
            raise InputError(f"irfftn: s {s} and axes {ax} must have the same length")
        for a, n in zip(ax, s):
            shape[a] = int(n)
        if shape[ax[-1]] // 2 + 1 != x.shape[ax[-1]]:
            raise InputError(f"irfftn: length {shape[ax[-1]]} needs {shape[ax[-1]] // 2 + 1} input "
                             f"coefficients along axis {ax[-1]}, got {x.shape[ax[-1]]}")
    if any(shape[a] != x.shape[a] for a in ax[:-1]):
        raise InputError("irfftn: zero-padding / cropping of the spectrum is not supported; pass matching s")
    plan = get_plan(shape, cdt, ax, real=True, device=backend.get_device(x))
    out = _check_out(out, plan, plan.in_shape, plan.in_dtype, "irfftn")
    plan.backward(x, out, normalise=False)
    return _scale(xp, out, _norm_factors(norm, plan.n)[1])


@accepts_torch
def rfft(x, axis: int = -1, norm: str | None = None, out=None):
    """1D real-to-complex FFT along ``axis`` (other axes batched)."""
    return rfftn(x, axes=(axis,), norm=norm, out=out)


@accepts_torch
def irfft(x, n: int | None = None, axis: int = -1, norm: str | None = None, out=None):
    """1D complex-to-real inverse FFT along ``axis``; ``n`` is the output length."""
    if n is not None and not (isinstance(n, Integral) and not isinstance(n, bool) and n >= 1):
        raise InputError(f"irfft: n must be an int >= 1, got {n!r}")
    return irfftn(x, s=None if n is None else (n,), axes=(axis,), norm=norm, out=out)


@accepts_torch
def fftshift(x, axes=None):
    """``numpy.fft.fftshift`` / ``cupy.fft.fftshift`` for the array's device."""
    return backend.get_array_module(x).fft.fftshift(x, axes=axes)


@accepts_torch
def ifftshift(x, axes=None):
    """``numpy.fft.ifftshift`` / ``cupy.fft.ifftshift`` for the array's device."""
    return backend.get_array_module(x).fft.ifftshift(x, axes=axes)
