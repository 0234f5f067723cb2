# pokervod-db developer commands. Only Python 3.11+ and make are needed: the first target that
# needs them creates .venv and installs the package with its development tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= default

.PHONY: run test lint format bench clean down

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pokervod-db needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: bring the database to head (embedded server unless DATABASE_URL is set) and show its state
run: $(STAMP)
	$(BIN)/pokervod-db up --sample

## test: lint, type-check and run the test suite against real PostgreSQL
test: $(STAMP) lint
	$(BIN)/python -m pytest

## lint: ruff, mypy and squawk on the SQL of the migrations (rendered offline, no database)
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts examples
	$(BIN)/ruff format --check src tests benchmarks scripts examples
	$(BIN)/mypy
	$(BIN)/python scripts/lint_migrations.py

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks scripts examples
	$(BIN)/ruff check --fix src tests benchmarks scripts examples

## bench: the benchmark (SCALE=default|small|tiny); results go to benchmarks/results/
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --scale $(SCALE)

## down: stop the embedded server
down: $(STAMP)
	$(BIN)/pokervod-db down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
