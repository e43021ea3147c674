# One-command entry points. Each target sets up what it needs (virtual env, pip, npm)
# and is idempotent: a second run only re-installs when pyproject.toml or
# package-lock.json changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
JS_STAMP := node_modules/.installed

.PHONY: setup test test-slow test-e2e demo lint bench-gas contracts clean

setup: $(PY_STAMP) $(JS_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(JS_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: setup
	$(BIN)/python -m pytest -n 2 -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-e2e: setup
	$(BIN)/python -m pytest -q -m e2e

demo: setup
	$(BIN)/ledgerlearn demo

lint: setup
	$(BIN)/ruff check marketplace drag zk tests scripts
	$(BIN)/mypy marketplace drag zk

contracts: setup
	$(BIN)/ledgerlearn contracts build

bench-gas: setup
	$(BIN)/python scripts/bench_gas.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis
