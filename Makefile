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
# the versions CI passed with; `make test-latest` installs without it to catch drift on purpose
CONSTRAINTS ?= constraints.txt
LATEST_VENV ?= .venv-latest

.PHONY: demo test test-cpu test-cudasim test-gpu test-slow test-latest constraints bench drill venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" -c $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -e ".[test,torch,bench]" -c $(CONSTRAINTS)
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

# The suite against the newest releases pyproject.toml admits (no constraints): run it before
# refreshing constraints.txt, so that drift is found here and not by users.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(LATEST_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(LATEST_VENV)/bin/python -m pip install --quiet -e ".[test,torch,bench]"
	$(LATEST_VENV)/bin/pip freeze --exclude-editable | sed 's/+cpu$$//' > $(LATEST_VENV)/passed-candidates.txt
	$(LATEST_VENV)/bin/python -m pytest -m "not slow and not cudasim" $(PYTEST_ARGS)
	NUMBA_ENABLE_CUDASIM=1 $(LATEST_VENV)/bin/python -m pytest -m cudasim $(PYTEST_ARGS)

# Write constraints.txt from the .venv-latest whose suite just passed (make test-latest first).
constraints: $(LATEST_VENV)/passed-candidates.txt
	{ sed -n '1,3p' $(CONSTRAINTS); cat $(LATEST_VENV)/passed-candidates.txt; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

bench: $(STAMP)
	$(BIN)/fastem bench

# The fault-injection drill (every command against bad inputs, full disks, kills, concurrent
# writers; ~10 min): bench/results/fault_drill.{json,md}, quoted in docs/reliability.md.
drill: $(STAMP)
	$(BIN)/python bench/fault_drill.py

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(DEMO_OUT) build *.egg-info .pytest_cache
