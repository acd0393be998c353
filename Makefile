# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sermm-installed

.PHONY: demo test lint systems bench bench-psrcal clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

# The audio/text systems need torch: install the CPU build pinned here before the extra.
systems: $(STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[systems,test]"

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
