# Two entry points for people: `make demo` (the main job) and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint typecheck bench bench-device clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/agentrt demo

lint: setup
	$(PY) -m ruff check agentrt streams policies sims tests

typecheck: setup
	$(PY) -m mypy agentrt streams policies sims

test: lint typecheck
	$(PY) -m pytest -q

bench: setup
	$(VENV)/bin/agentrt bench transport --quick

# The device check (docs/engine.md): bench vla, engine and qa on one device, one table and a JSON.
# make bench-device DEVICE=cuda [DTYPE=bfloat16] [QUICK=--quick]
# On an offline GPU machine with torch and transformers but no venv: make bench-device AGENTRT="python3 -m agentrt.cli"
DEVICE ?= cuda
DTYPE ?= float32
QUICK ?=
AGENTRT ?= $(VENV)/bin/agentrt
bench-device: $(if $(filter $(VENV)/bin/agentrt,$(AGENTRT)),setup)
	$(AGENTRT) bench device --device $(DEVICE) --dtype $(DTYPE) $(QUICK) --json runs/bench-device-$(DEVICE)-$(DTYPE).json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
