#!/usr/bin/env bash
# A throwaway environment for the GENFIRE 1.1.11 peer (bench/tomo_regularised.py --genfire-env DIR).
# GENFIRE needs numpy < 1.24 (its R-free bookkeeping builds ragged arrays, an error from numpy 1.24
# on; fastem has numpy 2), so it lives in its own venv and
# runs as a subprocess (bench/peers/genfire_run.py). PyQt5 is installed because `import genfire`
# imports its GUI package; only the command-line reconstruction (genfire.main.main) is used.
#
# Usage: bash bench/peers/make_genfire_env.sh DIR      (then DIR/bin/python runs GENFIRE)
set -euo pipefail
dir=${1:?usage: make_genfire_env.sh DIR}
python3 -m venv "$dir"
"$dir/bin/pip" install -q "numpy==1.23.5" "scipy==1.10.1" "matplotlib==3.7.5" "pillow" "pyparsing" "six" "pyfftw==0.13.1" "PyQt5==5.15.11"
"$dir/bin/pip" install -q --no-deps "genfire==1.1.11"
"$dir/bin/python" -c "import genfire.main, numpy; print('GENFIRE', 'numpy', numpy.__version__)"
