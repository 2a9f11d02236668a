# Two commands on a fresh machine: `make demo` and `make test`. The first of them creates the virtual environment
# (torch's CPU wheel first, then edgeaff with its extras); later calls reuse it, and reinstall only when
# pyproject.toml has changed.
#
#   make demo    the whole kit on built-in synthetic data: edgeaff demo $(DEMO_DIR)
#   make test    the tests: python -m pytest $(PYTEST_ARGS)
#   make lint    ruff, ruff format --check, mypy and the architecture contracts (lint-imports)
#   make ci      lint, then test (what .ci/run does, in the venv you name)
#   make venv    only the set-up
#
# Variables (make test VENV=/tmp/v PYTEST_ARGS='-x tests/runtime'):
#   PYTHON          the interpreter that creates the venv (Python >= 3.10)
#   VENV            where the venv lives
#   TORCH           the torch requirement, installed before everything else
#   TORCH_PIP_ARGS  extra pip arguments for torch alone, e.g. an --index-url of CPU-only wheels where the default
#                   index would give a CUDA build
#   EXTRAS          the extras installed with edgeaff
#   DEMO_DIR        where the demo writes; DEMO_ARGS: more options for it (--size small)

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= train,export,ort,cluster,serve,dev
DEMO_DIR ?= edgeaff-demo
DEMO_ARGS ?=
PYTEST_ARGS ?=

BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.edgeaff-installed
PIP := "$(BIN)/python" -m pip --disable-pip-version-check --quiet
# the tests start the `edgeaff` command of this venv
RUN := PATH="$(BIN):$$PATH"

.PHONY: venv demo test lint ci

venv: $(STAMP)

# The stamp is written last, so an interrupted install is redone by the next call (pip skips what is there).
$(STAMP): pyproject.toml
	test -x "$(BIN)/python" || $(PYTHON) -m venv "$(VENV)"
	$(PIP) install --upgrade pip
	@# torch first: installed after (or with) the extras, pip would resolve a multi-GB CUDA build of it
	$(PIP) install $(TORCH_PIP_ARGS) "$(TORCH)"
	$(PIP) install -e ".[$(EXTRAS)]"
	"$(BIN)/python" -c "import torch, edgeaff; print('venv ready:', '$(VENV)', 'torch', torch.__version__)"
	touch "$@"

demo: $(STAMP)
	$(RUN) edgeaff demo "$(DEMO_DIR)" $(DEMO_ARGS)

test: $(STAMP)
	$(RUN) python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports --no-cache

ci: lint test
