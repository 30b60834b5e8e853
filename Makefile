# Two commands on a fresh Debian 12 machine with Python 3.11:
#   make run    runs the exporter with its default config (or ARGS="--config exporter.yml")
#   make test   lints, type-checks and runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint tools bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/afirgen-exporter $(ARGS)

tools:
	scripts/install-tools

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(VENV)/.installed tools lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	scripts/install-tools --peers
	$(BIN)/python benchmarks/scrape.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
