# Two commands on a fresh Debian 12 machine with Python 3.11:
#   make run    runs the exporter with its default config (or ARGS="--config exporter.yml")
#   make test   lints, type-checks and runs the whole test suite
# One venv, two stamps: `run` installs the exporter and its collectors' clients only; `test`
# adds the test extra (linters, the Grafana SDK, Celery, real brokers' clients).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
# every collector's client library, so any config runs; not celery (only `inspect: true`)
RUN_EXTRAS := database,redis,http,task-queue
PIP := $(BIN)/pip install --quiet --disable-pip-version-check --no-warn-script-location

.PHONY: run test lint tools bench generate clean kserve-env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[$(RUN_EXTRAS)]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/afirgen-exporter $(ARGS)

tools:
	scripts/install-tools

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# A real KServe model server for tests/test_model_servers_kserve.py, in its own venv: kserve
# pins psutil<6, which the exporter's environment must not be downgraded to.
KSERVE_VENV := .venv-kserve
$(KSERVE_VENV)/.installed:
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet --disable-pip-version-check 'kserve>=0.15,<0.22'
	touch $@

kserve-env: $(KSERVE_VENV)/.installed

test: $(VENV)/.test-installed tools lint kserve-env
	$(BIN)/pytest $(PYTEST_ARGS)

# Regenerates every generated file (dashboards, rules and what derives from them).
generate: $(VENV)/.test-installed
	$(BIN)/python -m grafana.build
	$(BIN)/python -m alerts.build

bench: $(VENV)/.test-installed
	$(PIP) -e '.[bench]'
	scripts/install-tools --peers
	$(BIN)/python benchmarks/scrape.py

clean:
	rm -rf $(VENV) $(KSERVE_VENV) .pytest_cache .mypy_cache .ruff_cache
