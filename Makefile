# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt typecheck pytest test-stress mutate bench clean deploy-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## set up and run the gateway (SQLite, local storage, the sandbox upstream: asked for explicitly); PORT=N picks the port
	$(BIN)/gateway serve --sandbox $(if $(PORT),--port $(PORT))

test: $(STAMP) lint typecheck deploy-check pytest  ## set up and run every check CI runs

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench scripts
	$(BIN)/ruff format --check gateway tests bench scripts

fmt: $(STAMP)
	$(BIN)/ruff check --fix gateway tests bench scripts
	$(BIN)/ruff format gateway tests bench scripts

deploy-check: $(STAMP)  ## hadolint the Dockerfile; lint, render and validate the Helm chart (offline)
	VENV=$(VENV) scripts/check-deploy.sh

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)  ## the whole suite on 2 workers (pytest-xdist; every test has its own ports, files, databases)
	$(BIN)/pytest -q -n 2

STRESS_ROUNDS ?= 3
test-stress: $(STAMP)  ## the end-to-end and service tests with every core kept busy, STRESS_ROUNDS times in a row
	$(BIN)/python scripts/stress.py --rounds $(STRESS_ROUNDS) -- -q -n 2 -p no:cacheprovider tests/e2e tests/services

mutate: $(STAMP)  ## apply each hand-made mutation to a copy of the tree and run its focused tests (docs/testing.md)
	$(BIN)/python scripts/mutate.py

$(VENV)/.bench-installed: $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(VENV)/.bench-installed

bench: $(VENV)/.bench-installed  ## the benchmark (bench/README.md); installs the bench extra (matplotlib, py-spy)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
