# fastem: two commands set everything up on a fresh machine with Python 3.11 and pip.
#   make demo   -> creates .venv, installs fastem, runs every main job on built-in synthetic data
#   make test   -> creates .venv, installs fastem + test deps, runs the CPU suite, the Numba CUDA
#                  simulator suite and the nvcc compile check of every .cu kernel
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fastem-installed
# torch is optional; this pin takes the local CPU wheel on our machines (no multi-GB download)
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-output
PYTEST_ARGS ?=

.PHONY: demo test test-cpu test-cudasim test-gpu test-slow bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,torch,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fastem demo --out $(DEMO_OUT) --overwrite

test: test-cpu test-cudasim

test-cpu: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not cudasim" $(PYTEST_ARGS)

# Numba CUDA kernels under the CUDA simulator, in their own process so the simulator never
# leaks into the CPU suite.
test-cudasim: $(STAMP)
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -m cudasim $(PYTEST_ARGS)

# On a machine with a CUDA GPU (see bench/gpu_check.sh for the whole GPU check).
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -m gpu $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/fastem bench

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info .pytest_cache
