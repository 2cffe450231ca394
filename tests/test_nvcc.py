"""Every CUDA C source in kernels/cuda compiles with nvcc (CI has nvcc but no GPU)."""

import shutil
import subprocess

import pytest

from fastem.kernels import _cuda

NVCC = shutil.which("nvcc")
SOURCES = _cuda.list_sources()


def test_sources_are_shipped():
    assert SOURCES, "no .cu sources found under kernels/cuda"


@pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: CUDA C compile check skipped")
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_nvcc_compiles(source, arch, tmp_path):
    cmd = [NVCC, "-ptx", f"-arch={arch}", "--std=c++17", f"-I{_cuda.CUDA_DIR}", str(source),
           "-o", str(tmp_path / "out.ptx")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"nvcc failed on {source.name} ({arch}):\n{proc.stderr}"
    ptx = (tmp_path / "out.ptx").read_text()
    # every extern "C" __global__ entry point must appear in the PTX
    import re

    entries = re.findall(r'extern\s+"C"\s+__global__\s+void\s+(\w+)', source.read_text())
    assert entries, f"{source.name} declares no extern \"C\" __global__ kernels"
    for name in entries:
        assert f".entry {name}(" in ptx, f"{name} missing from the PTX of {source.name}"
