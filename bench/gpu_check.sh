#!/usr/bin/env bash
# The whole GPU check, on a machine with a CUDA GPU:
#   bench/gpu_check.sh [WHEEL_DIR]
#
# 1. installs fastem into the current Python (editable, no dependency resolution), plus the
#    wheels found in WHEEL_DIR (default .whl/; e.g. pyfftw, mrcfile, cupy-cuda13x, numba-cuda
#    for machines without network) or, when the folder is absent, the `gpu` extra from PyPI;
# 2. records the GPU (nvidia-smi) and library versions;
# 3. runs the `gpu` pytest suite (CuPy paths compared with the CPU results, CUDA C kernels
#    through cupy.RawModule, Numba CUDA kernels on the real device);
# 4. runs every bench case on the GPU (`fastem --device cuda bench`).
# Everything is written to $RESULTS_DIR (default bench/results/): gpu-check-<date>.log, the
# pytest report and the bench JSON files. Exit status: non-zero if the gpu suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${1:-.whl}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y%m%d-%H%M%S)
log="$RESULTS_DIR/gpu-check-$stamp.log"
exec > >(tee "$log") 2>&1

echo "== fastem GPU check $stamp"
nvidia-smi || { echo "nvidia-smi failed: no GPU here?"; exit 2; }

if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  echo "== installing wheels from $WHEELS"
  $PY -m pip install -q --no-index --no-deps --no-compile "$WHEELS"/*.whl || exit 3
  $PY -m pip install -q --no-deps --no-build-isolation -e . || exit 3
else
  echo "== installing fastem[gpu] from the package index"
  $PY -m pip install -q -e ".[gpu,test]" || exit 3
fi

$PY - <<'PYEOF'
import fastem, fastem.backend as b, fastem.fft as F
print("fastem", fastem.__version__, "| cupy available:", b.cupy_available(), b.gpu_unavailable_reason())
if b.cupy_available():
    print("device:", b.Device("cuda").name)
print("FFT providers: cpu =", F.provider("cpu"), "| gpu =", F.provider("cuda") if b.cupy_available() else "-")
from fastem.benchmark import machine_info
print(machine_info())
PYEOF

echo "== gpu test suite"
$PY -m pytest -m gpu -rA -q --junitxml="$RESULTS_DIR/gpu-tests-$stamp.xml" -p no:cacheprovider
status=$?

echo "== GPU benchmarks"
$PY -m fastem.cli.main --device cuda bench --out-dir "$RESULTS_DIR" || echo "bench failed with status $?"

echo "== done: gpu suite status $status; results in $RESULTS_DIR"
exit $status
