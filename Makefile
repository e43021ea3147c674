# One-command entry points. Each target sets up what it needs (virtual env, pip, npm)
# and is idempotent: a second run only re-installs when pyproject.toml or
# package-lock.json changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
JS_STAMP := node_modules/.installed

# Static analysis of the contracts: slither in its own venv (it pins web3 < 8) and solhint
# in its own npm folder, both pinned, both installed by `make analyze` itself.
SLITHER_VENV := .venv-slither
SLITHER_STAMP := $(SLITHER_VENV)/.installed
SLITHER_REQS := contracts/tools/slither-requirements.txt
SOLHINT_DIR := contracts/tools/solhint
SOLHINT_STAMP := $(SOLHINT_DIR)/node_modules/.installed

# The dashboard's browser test (tests/e2e/test_dashboard.py) drives Debian's chromium:
# Playwright's own browser download needs the internet. `make chromium` installs it only
# when it is missing and we are root with apt (CI containers); anywhere else it prints a
# note and the test skips, naming the fix.
CHROMIUM := /usr/bin/chromium

.PHONY: setup chromium test test-slow test-e2e demo lint analyze bench-gas contracts clean

setup: $(PY_STAMP) $(JS_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(JS_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the dashboard's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else \
		echo "note: no $(CHROMIUM) and not root: the dashboard's browser test will skip" \
			"(fix: sudo apt-get install -y chromium)"; \
	fi

test: setup chromium
	$(BIN)/python -m pytest -n 2 -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-e2e: setup chromium
	$(BIN)/python -m pytest -q -m e2e

demo: setup
	$(BIN)/ledgerlearn demo

lint: setup
	$(BIN)/ruff check marketplace drag zk tests scripts
	$(BIN)/mypy marketplace drag zk

$(SLITHER_STAMP): $(SLITHER_REQS)
	test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/python -m pip install --quiet -r $(SLITHER_REQS)
	touch $@

$(SOLHINT_STAMP): $(SOLHINT_DIR)/package.json $(SOLHINT_DIR)/package-lock.json
	npm ci --prefix $(SOLHINT_DIR) --no-audit --no-fund --loglevel=error
	touch $@

analyze: $(JS_STAMP) $(SLITHER_STAMP) $(SOLHINT_STAMP)
	cd contracts && tools/solhint/node_modules/.bin/solhint --disc -c .solhint.json 'src/**/*.sol'
	$(PYTHON) scripts/analyze_contracts.py --slither $(SLITHER_VENV)/bin/slither

contracts: setup
	$(BIN)/ledgerlearn contracts build

bench-gas: setup
	$(BIN)/python scripts/bench_gas.py

clean:
	rm -rf $(VENV) $(SLITHER_VENV) node_modules $(SOLHINT_DIR)/node_modules .pytest_cache .hypothesis
