"""Every CUDA C source compiles with NVRTC exactly as the CuPy loader compiles it at run time.

``tests/test_nvcc.py`` checks the offline compiler; CuPy's ``RawModule`` uses NVRTC with
``kernels._cuda.DEFAULT_OPTIONS``, which accepts a slightly different language (no host headers,
its own include handling). NVRTC is a plain library (``nvidia-cuda-nvrtc`` wheel, in the test
extra) and needs no GPU, so this check runs in CI. A second, static check makes sure every
kernel name the Python dispatchers ask ``get_function`` for exists in the named source.
"""

import re
from pathlib import Path

import pytest

from fastem.kernels import _cuda

SOURCES = _cuda.list_sources()
ENTRY = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)')


def _nvrtc():
    try:
        from cuda.bindings import nvrtc

        nvrtc.nvrtcVersion()
        return nvrtc
    except Exception as exc:  # bindings or libnvrtc missing
        pytest.skip(f"NVRTC not available ({type(exc).__name__}): install the test extra (nvidia-cuda-nvrtc)")


@pytest.mark.parametrize("arch", ["compute_90", "compute_80"])
@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_nvrtc_compiles_like_cupy(source, arch):
    nvrtc = _nvrtc()
    ok = nvrtc.nvrtcResult.NVRTC_SUCCESS
    err, prog = nvrtc.nvrtcCreateProgram(source.read_bytes(), source.name.encode(), 0, [], [])
    assert err == ok
    try:
        opts = [o.encode() for o in _cuda.DEFAULT_OPTIONS] + [f"--gpu-architecture={arch}".encode()]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        # a mutable buffer: NVRTC writes into it, and writing into an (immutable, possibly
        # shared) bytes object corrupted the interpreter (torch.load failed in later tests)
        log = bytearray(size)
        nvrtc.nvrtcGetProgramLog(prog, log)
        assert err == ok, f"NVRTC failed on {source.name} ({arch}):\n{bytes(log).decode(errors='replace')}"
        _, size = nvrtc.nvrtcGetPTXSize(prog)
        ptx = bytearray(size)
        nvrtc.nvrtcGetPTX(prog, ptx)
        ptx = bytes(ptx).decode(errors="replace")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    entries = ENTRY.findall(source.read_text())
    assert entries, f"{source.name} declares no extern \"C\" kernels"
    for name in entries:
        assert f".entry {name}(" in ptx, f"{name} missing from the NVRTC PTX of {source.name}"


def _dispatch_requests():
    """(python file, source name, kernel-name pattern) for every literal get_function call."""
    root = Path(_cuda.__file__).resolve().parent
    call = re.compile(r'get_function\(\s*"(\w+)"\s*,\s*(f?)"([^"]+)"')
    out = []
    for py in sorted(root.rglob("*.py")):
        for src, is_f, name in call.findall(py.read_text()):
            pattern = re.sub(r"\\\{[^}]*\\\}", r"\\w+", re.escape(name)) if is_f else re.escape(name)
            out.append((py.name, src, pattern))
    return out


REQUESTS = _dispatch_requests()


def test_dispatchers_were_found():
    assert len(REQUESTS) >= 5


@pytest.mark.parametrize("py,src,pattern", REQUESTS, ids=[f"{p}:{s}:{n}" for p, s, n in REQUESTS])
def test_dispatched_kernel_names_exist(py, src, pattern):
    path = _cuda.source_path(src)
    entries = ENTRY.findall(path.read_text())
    assert any(re.fullmatch(pattern, e) for e in entries), \
        f"{py} asks {src}.cu for a kernel matching {pattern!r}; it defines {entries}"
