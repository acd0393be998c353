# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sermm-installed
SYSTEMS_STAMP := $(VENV)/.sermm-systems-installed

.PHONY: demo test lint systems bench bench-psrcal clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

# The audio/text systems need torch: the CPU build pinned here goes in before the extra (a bare
# `torch` requirement would pull a multi-GB CUDA build).
$(SYSTEMS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[systems,test]"
	touch $(SYSTEMS_STAMP)

test: $(SYSTEMS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

systems: $(SYSTEMS_STAMP)

# The calibration comparison with psrcal (needs torch) in a venv of its own.
bench-psrcal:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet torch==2.13.0
	.venv-bench/bin/python -m pip install --quiet psrcal expected-cost -e .
	.venv-bench/bin/python benchmarks/calibration.py

bench: $(STAMP)
	$(BIN)/python benchmarks/fusion.py
	$(BIN)/python benchmarks/calibration.py

clean:
	rm -rf $(VENV) .venv-bench out benchmarks/_data
