"""Every CUDA C source compiles with NVRTC exactly as the CuPy loader compiles it at run time.

``tests/test_nvcc.py`` checks the offline compiler; CuPy's ``RawModule`` uses NVRTC with
``kernels._cuda.DEFAULT_OPTIONS``, which accepts a slightly different language (no host headers,
its own include handling). NVRTC is a plain library (``nvidia-cuda-nvrtc`` wheel, in the test
extra) and needs no GPU, so this check runs in CI. That every launch site names an existing
kernel, with arguments matching its signature, is checked in ``test_cuda_launch_signatures.py``.
"""

import re

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
