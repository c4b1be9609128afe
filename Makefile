# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt typecheck pytest bench clean deploy-check

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
	$(BIN)/ruff check --fix gateway tests bench
	$(BIN)/ruff format gateway tests bench

deploy-check: $(STAMP)  ## hadolint the Dockerfile; lint, render and validate the Helm chart (offline)
	VENV=$(VENV) scripts/check-deploy.sh

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
